# MAE-CT on ImageNet-1k for an MAE ViT-B/16, phase 2 of 2: contrastive tuning ("stage 3",
# ml-jku/MAE-CT yamls/stage3_maect_contrastive_tuning/base16.yaml), from phase 1's checkpoint
# (encoder, projector, predictor, queue; the EMA projector starts as phase 1's projector,
# nnclr_ema_queue_head.py:11-17).
# - top 6 of 12 blocks tuned (:45-53), 20 epochs (:94), batch 1024 (:95);
# - positive drawn among the 20 nearest neighbours (:69), EMA projector 0.99 for the queue and
#   the lookup (:68), temperature 0.15 (:67);
# - a fresh optimizer and schedule: AdamW lr 8e-4 (1e-4 per 256 views) for encoder and head,
#   layer decay 0.65 (:35-37), weight decay 0.05 encoder / 1e-5 head (:31,78), warm-up over 20%
#   then cosine (:38-44);
# - the evaluated encoder is an EMA of the weights with momentum 0.9999 (:111-116): mmengine's
#   EMAHook, whose checkpoints hold the EMA weights (the live ones under ema_state_dict).
_base_ = './maect-mae_vit-base-p16_8xb128-coslr-20e-head_in1k.py'

model = dict(
    target_momentum=0.99,
    backbone=dict(frozen_stages=6, init_cfg=None),  # weights from phase 1 (load_from)
    head=dict(topk=20))
load_from = 'work_dirs/maect-mae_vit-base-p16_8xb128-coslr-20e-head_in1k/iter_25020.pth'
find_unused_parameters = False
optim_wrapper = dict(
    optimizer=dict(weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.65, custom_keys={
        'neck.': dict(decay_mult=1e-5 / 0.05), 'head.': dict(decay_mult=1e-5 / 0.05)}))
custom_hooks = [dict(type='EMAHook', momentum=1e-4, update_buffers=True)]
