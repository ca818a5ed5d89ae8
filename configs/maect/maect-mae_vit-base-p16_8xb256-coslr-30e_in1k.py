# MAE-CT on ImageNet-1k for an MAE ViT-B/16 (8 GPUs x 256 images): the structure of the
# CPU-sized config at paper scale: top 4 of 12 blocks tuned (the rest frozen), NNCLR projector
# (768 -> 4096 -> 256, 3 layers, BN) and predictor (256 -> 4096 -> 256), a 65536-entry support
# queue, temperature 0.1, crop + flip only, 30 epochs of AdamW with cosine decay: a small
# fraction (<= 10%) of the 1600 pretraining epochs, as the paper prescribes. The paper's exact
# schedule per model size may differ; adjust `max_iters` / `lr` to it.
_base_ = './maect-mae_vit-tiny-p8_synthetic.py'

dims, proj_dims, hidden = 768, 256, 4096
model = dict(
    backbone=dict(arch='base', patch_size=16, img_size=224, frozen_stages=8,
                  pretrained='work_dirs/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k/'
                  'epoch_1600.pth'),
    neck=dict(in_channels=dims, hid_channels=hidden, out_channels=proj_dims,
              norm_cfg=dict(type='SyncBN')),
    head=dict(feat_dims=proj_dims, queue_size=65536,
              predictor=dict(in_channels=proj_dims, hid_channels=hidden, out_channels=proj_dims,
                             norm_cfg=dict(type='SyncBN'))))
view = [
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.08, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
]
train_dataloader = dict(
    batch_size=256, num_workers=8, persistent_workers=True,
    dataset=dict(data_root='data/imagenet', pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='MultiView', num_views=2, transforms=[view]),
        dict(type='PackInputs')]))
max_iters = 30 * 1281167 // 2048  # 30 epochs of 8 x 256 images
optim_wrapper = dict(type='AmpOptimWrapper', optimizer=dict(lr=1e-4 * 2048 / 256))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=max_iters // 10),
    dict(type='CosineAnnealingLR', T_max=max_iters - max_iters // 10, by_epoch=False,
         begin=max_iters // 10, end=max_iters),
]
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters // 10, max_keep_ckpts=2))
