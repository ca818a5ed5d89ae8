# MAE-CT for an MAE ViT-H/14 (the official MAE release), after the released ViT-H/14 recipe:
# batch 512 (8 x 64), 20 epochs head initialisation + 30 epochs tuning, top 16 of 32 blocks,
# class-token features, temperature 0.3, EMA projector 0.995.
_base_ = './maect-mae_vit-base-p16_8xb128-coslr-40e_in1k.py'

epoch = 1281167 // 512
max_iters = 50 * epoch
model = dict(
    head_init_iters=20 * epoch,
    target_momentum=0.995,
    backbone=dict(arch='huge', patch_size=14, frozen_stages=16, out_type='cls_token',
                  pretrained='checkpoints/mae_pretrain_vit_huge.pth'),  # official release
    neck=dict(in_channels=1280),
    head=dict(temperature=0.3))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=1e-4 * 512 / 256))
warmup = 4 * epoch  # 20% of the head phase
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup, by_epoch=False, begin=warmup,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(checkpoint=dict(interval=5 * epoch))
