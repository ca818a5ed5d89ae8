# MAE-CT phase 2 (tuning) for an MAE ViT-H/14, after ml-jku/MAE-CT
# yamls/stage3_maect_contrastive_tuning/huge14.yaml: 30 epochs (:105) at batch 512, top 16 of 32
# blocks (:46-62), temperature 0.3 (:77), EMA projector 0.995 (:78), lr 4e-4.
_base_ = './maect-mae_vit-huge-p14_8xb64-coslr-20e-head_in1k.py'

epoch = 1281167 // 512
max_iters = 30 * epoch
warmup = int(0.2 * max_iters)
model = dict(
    target_momentum=0.995,
    backbone=dict(frozen_stages=16, init_cfg=None),
    head=dict(topk=20, temperature=0.3))
load_from = 'work_dirs/maect-mae_vit-huge-p14_8xb64-coslr-20e-head_in1k/iter_50040.pth'
optim_wrapper = dict(
    optimizer=dict(weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.65, custom_keys={
        'neck.': dict(decay_mult=1e-5 / 0.05), 'head.': dict(decay_mult=1e-5 / 0.05)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1 / (warmup + 1), by_epoch=False, begin=0, end=warmup),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup, by_epoch=False, begin=warmup,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters)
custom_hooks = [dict(type='EMAHook', momentum=1e-4, update_buffers=True)]
