# MAE-CT on ImageNet-1k for an MAE ViT-B/16, 8 GPUs x 128 images (batch 1024), after the
# released MAE-CT ViT-B/16 recipe (github.com/ml-jku/MAE-CT, yamls/stage2 + stage3):
# - 20 epochs head initialisation (encoder frozen), then 20 epochs of tuning; here one run of
#   40 epochs whose first 20 are the head phase (`head_init_iters`);
# - top 6 of 12 blocks tuned, layer-wise lr decay 0.65, AdamW lr 1e-4 per 256 images,
#   weight decay 0.05 (encoder) / 1e-5 (projector, predictor);
# - NNCLR: projector 768 -> 2048 -> 2048 -> 256, predictor 256 -> 4096 -> 256, queue 65536,
#   temperature 0.15, positive drawn among the 20 nearest neighbours, EMA projector 0.99
#   for the queue, mean-pooled patch tokens; crop (0.08-1) + flip only.
# Differences: the released recipe runs the phases separately, each with a 20% warmup and a
# cosine decay, and its head phase uses a single nearest neighbour and no EMA projector; here
# one warmup (4 epochs) + cosine spans both phases and the tuning-phase head settings apply
# throughout.
_base_ = './maect-mae_vit-tiny-p8_synthetic.py'

dims, proj_dims = 768, 256
epoch = 1281167 // 1024  # iterations per epoch at batch 1024
model = dict(
    head_init_iters=20 * epoch,
    target_momentum=0.99,
    backbone=dict(arch='base', patch_size=16, img_size=224, frozen_stages=6,
                  pretrained='work_dirs/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k/'
                  'epoch_1600.pth'),
    neck=dict(in_channels=dims, hid_channels=2048, out_channels=proj_dims,
              norm_cfg=dict(type='SyncBN')),
    head=dict(feat_dims=proj_dims, queue_size=65536, temperature=0.15, topk=20,
              predictor=dict(in_channels=proj_dims, hid_channels=4096, out_channels=proj_dims,
                             norm_cfg=dict(type='SyncBN'))))
view = [
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.08, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
]
train_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True,
    dataset=dict(data_root='data/imagenet', pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='MultiView', num_views=2, transforms=[view]),
        dict(type='PackInputs')]))
max_iters = 40 * epoch
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
    optimizer=dict(lr=1e-4 * 1024 / 256, weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.65, custom_keys={
        'neck.': dict(decay_mult=1e-5 / 0.05), 'head.': dict(decay_mult=1e-5 / 0.05)}))
warmup = 4 * epoch  # 20% of the head phase
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup, by_epoch=False, begin=warmup,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=5 * epoch, max_keep_ckpts=2))
