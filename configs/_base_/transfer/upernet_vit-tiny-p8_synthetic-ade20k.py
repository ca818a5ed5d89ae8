# UperNet + auxiliary FCN head (stock mmseg) on the CPU-sized pretrained ViT, on the embedded
# mini-ADE20K, evaluated with IoUMetric (mIoU). Per-method configs: configs/{lomar,mae,cae}/upernet_*.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    '../datasets/synthetic_ade20k.py',
    'mmseg::_base_/default_runtime.py',
    './vit-tiny-p8_dense.py',
    '../safety.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)

dims = 128
crop_size = (192, 192)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN is GPU-only
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone={{_base_.vit_backbone}},
    neck={{_base_.vit_pyramid}},
    decode_head=dict(in_channels=[dims] * 4, channels=dims, num_classes=150, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=dims, in_index=2, channels=64, num_classes=150,
                        norm_cfg=norm_cfg))

max_iters = 120
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = {{_base_.vit_optim_wrapper}}
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=15),
    dict(type='PolyLR', eta_min=0., power=1.0, by_epoch=False, begin=15, end=max_iters),
]
default_hooks = dict(
    _base_.safe_default_hooks,  # atomic checkpoints, exact resume, NaN stop
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', interval=max_iters, by_epoch=False,
                    max_keep_ckpts=1),
    visualization=dict(type='mmseg.SegVisualizationHook'))  # as mmseg's schedules; drawn with --show-dir
log_processor = dict(by_epoch=False)
