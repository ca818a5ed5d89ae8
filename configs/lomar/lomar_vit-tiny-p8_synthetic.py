# CPU-sized LoMaR pretraining on the embedded mini-ImageNet (about a minute on 2 cores): the paper
# recipe scaled down -- a 4-block ViT of width 128 on 112x112 crops with 8x8 patches (a 14x14
# grid, as ViT-B/16 at 224), 4 windows of 7x7 patches, mask ratio 0.8.
_base_ = ['./lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py']

dims = 128
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=dims, depth=4, num_heads=4,
                            mlp_hidden_dims=4 * dims),
                  patch_size=8, img_size=112),
    head=dict(in_channels=dims, patch_size=8))

data_root = 'data/synthetic/imagenet'
train_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomResizedCrop', scale=112, crop_ratio_range=(0.2, 1.0),
                 backend='pillow', interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs'),
        ]))

max_iters = 120
optim_wrapper = dict(  # fp32 OptimWrapper: no AMP on CPU
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', T_max=max_iters - 10, by_epoch=False, begin=10,
         end=max_iters),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_iters, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False)
