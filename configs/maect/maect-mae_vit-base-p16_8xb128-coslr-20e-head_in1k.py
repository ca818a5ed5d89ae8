# MAE-CT on ImageNet-1k for an MAE ViT-B/16, phase 1 of 2: the head alone ("stage 2, prepare
# head", ml-jku/MAE-CT yamls/stage2_maect_prepare_head/base16.yaml), 8 GPUs x 128 images.
# - encoder frozen (:28), NNCLR head trained 20 epochs (:61) at batch 1024 (:62);
# - the head's first phase: positive = the single nearest neighbour, the queue and the lookup
#   use the online projector (nnclr_head.py; no EMA projector), queue 65536, temperature 0.15
#   (:41-42); projector 768 -> 2048 -> 2048 -> 256, predictor 256 -> 4096 -> 256 (BN);
# - AdamW betas (0.9, 0.95), lr 1e-4 per 256 *views* (two per image: trainer_base.py:113-124,
#   so 1e-4 * 2 * 1024 / 256 = 8e-4), weight decay 1e-5 (:46-50), none on biases and 1-D
#   parameters (optimizer_wrapper.py:71-76); warm-up over the first 20% of the updates, then
#   cosine to 0 (:38-44); bf16 autocast (:63); crop (0.08-1, bicubic) + flip views (:8-19);
#   mean-pooled patch tokens after the final norm (stage 3 yaml :70-71).
# Phase 2 (configs/maect/maect-mae_vit-base-p16_8xb128-coslr-20e-tune_in1k.py) starts from
# this run's last checkpoint: encoder, head and queue.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/safety.py',
    '../_base_/encoders/mae.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)

dims, proj_dims = 768, 256
epoch = 1281167 // 1024  # updates per epoch at batch 1024
model = dict(
    type='lomar_transfer.MAECT',
    data_preprocessor=dict(
        type='mmpretrain.SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        _base_.mae_encoder,
        type='lomar_transfer.VisionTransformer',
        arch='base', patch_size=16, img_size=224, out_type='avg_featmap',
        frozen_stages=12,  # the whole encoder
        init_cfg=dict(type='Pretrained',
                      checkpoint='work_dirs/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k')),
    neck=dict(  # projector
        type='mmpretrain.NonLinearNeck', in_channels=dims, hid_channels=2048,
        out_channels=proj_dims, num_layers=3, with_avg_pool=False,
        norm_cfg=dict(type='SyncBN')),
    head=dict(
        type='lomar_transfer.NNCLRHead', feat_dims=proj_dims, queue_size=65536,
        temperature=0.15, topk=1,
        predictor=dict(
            type='mmpretrain.NonLinearNeck', in_channels=proj_dims, hid_channels=4096,
            out_channels=proj_dims, num_layers=2, with_avg_pool=False, with_last_bn=False,
            norm_cfg=dict(type='SyncBN'))))
view = [
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.08, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
]
train_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='mmpretrain.ImageNet', data_root='data/imagenet', split='train',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='MultiView', num_views=2, transforms=[view]),
                           dict(type='PackInputs')]))
epochs = 20
max_iters = epochs * epoch
warmup = int(0.2 * max_iters)
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16',
    constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4 * 2 * 1024 / 256, betas=(0.9, 0.95),
                   weight_decay=1e-5),
    paramwise_cfg=dict(layer_decay_rate=1.0, flat_decay_mult=0., bias_decay_mult=0.))
param_scheduler = [
    # MAE-CT: lr * (u + 1) / (W + 1) over the warm-up (schedules/linear_increasing.py)
    dict(type='LinearLR', start_factor=1 / (warmup + 1), by_epoch=False, begin=0, end=warmup),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup, by_epoch=False, begin=warmup,
         end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    _base_.safe_default_hooks,  # atomic checkpoints, exact resume, NaN stop
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', by_epoch=False,
                    interval=5 * epoch, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=1024)
