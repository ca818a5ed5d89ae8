# MAE-CT phase 1 (head only) for an MAE ViT-H/14 (the official MAE release), after
# ml-jku/MAE-CT yamls/stage2_maect_prepare_head/huge14.yaml: batch 512 (8 x 64; lr 1e-4 per 256
# views -> 4e-4), class-token features, 20 epochs.
_base_ = './maect-mae_vit-base-p16_8xb128-coslr-20e-head_in1k.py'

epoch = 1281167 // 512
max_iters = 20 * epoch
warmup = int(0.2 * max_iters)
model = dict(
    backbone=dict(arch='huge', patch_size=14, frozen_stages=32, out_type='cls_token',
                  init_cfg=dict(type='Pretrained',
                                checkpoint='checkpoints/mae_pretrain_vit_huge.pth')),
    neck=dict(in_channels=1280))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=1e-4 * 2 * 512 / 256))
param_scheduler = [
    dict(type='LinearLR', start_factor=1 / (warmup + 1), by_epoch=False, begin=0, end=warmup),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup, by_epoch=False, begin=warmup,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(checkpoint=dict(interval=5 * epoch))
auto_scale_lr = dict(base_batch_size=512)
