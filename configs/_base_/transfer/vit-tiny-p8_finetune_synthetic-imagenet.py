# ImageNet fine-tuning (stock mmpretrain ImageClassifier + Accuracy) of the CPU-sized pretrained
# ViT on the embedded mini-ImageNet, with the MAE/LoMaR fine-tuning recipe scaled down: global
# average pooling, drop path 0.1, layer-wise lr decay 0.65, mixup 0.8 / cutmix 1.0, label
# smoothing 0.1, AdamW + cosine. Paper-sized recipe: configs/{lomar,mae,cae}/vit-base-p16_*_in1k.py.
_base_ = [
    '../datasets/synthetic_imagenet.py',
    'mmpretrain::_base_/default_runtime.py',
    '../safety.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)

dims = 128
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='lomar_transfer.VisionTransformer',
        arch=dict(embed_dims=dims, depth=4, num_heads=4, mlp_hidden_dims=4 * dims),
        patch_size=8,
        img_size=112,
        drop_path_rate=0.1,
        out_type='avg_featmap',  # official fine-tune feature: mean of patch tokens -> fc_norm
        final_norm=False),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,  # ImageNet's label space (the mini set uses its first ten classes)
        in_channels=dims,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))
train_dataloader = dict(batch_size=32)
val_dataloader = dict(batch_size=50)
test_dataloader = val_dataloader

max_iters = 150
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65, custom_keys={
        'norm': dict(decay_mult=0.), 'bias': dict(decay_mult=0.), 'cls_token': dict(decay_mult=0.),
        'pos_embed': dict(decay_mult=0.), 'q_bias': dict(decay_mult=0.),
        'v_bias': dict(decay_mult=0.), 'gamma': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=15),
    dict(type='CosineAnnealingLR', T_max=max_iters - 15, by_epoch=False, begin=15,
         end=max_iters, eta_min=1e-6),
]
train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    _base_.safe_default_hooks,  # atomic checkpoints, exact resume, NaN stop
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', interval=max_iters,
                    by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
