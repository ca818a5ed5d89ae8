# Smoke run of the registry + data wiring from mmseg: stock EncoderDecoder + FCN head on our ViT
# (built as `lomar_transfer.VisionTransformer` under default_scope='mmseg'), on the mini-ADE20K.
# A few iterations on CPU; the UperNet transfer recipes live in configs/{lomar,mae,cae}/.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    '../_base_/datasets/synthetic_ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/smoke_4iters.py',
    '../_base_/safety.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)

dims = 64
crop_size = (192, 192)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN is GPU-only; BN also works on CPU
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='lomar_transfer.VisionTransformer',
        arch=dict(embed_dims=dims, depth=4, num_heads=4, mlp_hidden_dims=4 * dims),
        patch_size=16,
        img_size=224,
        out_indices=(1, 3),
        out_type='featmap'),
    decode_head=dict(in_channels=dims, in_index=1, channels=64, num_convs=1,
                     num_classes=150, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=dims, in_index=0, channels=32, num_convs=1,
                        num_classes=150, norm_cfg=norm_cfg))

default_hooks = dict(
    _base_.safe_default_hooks,  # atomic checkpoints, exact resume, NaN stop
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', interval={{_base_.max_iters}},
                    by_epoch=False),
    visualization=dict(type='mmseg.SegVisualizationHook'))
log_processor = dict(by_epoch=False)
