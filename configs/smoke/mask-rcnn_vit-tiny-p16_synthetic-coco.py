# Smoke run of the registry + data wiring from mmdet: stock Mask R-CNN whose backbone is our ViT
# (built as `lomar_transfer.VisionTransformer` under default_scope='mmdet'), on the mini-COCO.
# A few iterations on CPU; the real transfer recipes live in configs/{lomar,mae,cae}/.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/synthetic_coco_instance.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/schedules/smoke_4iters.py',
    '../_base_/safety.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)

dims = 64
num_classes = 5
model = dict(
    backbone=dict(
        _delete_=True,
        type='lomar_transfer.VisionTransformer',
        arch=dict(embed_dims=dims, depth=4, num_heads=4, mlp_hidden_dims=4 * dims),
        patch_size=16,
        img_size=224,
        out_indices=(-1, ),
        out_type='featmap'),
    # One stride-16 level: the plain ViT has no pyramid (ViTDet-style necks come with the transfer
    # configs), so FPN only projects channels here.
    neck=dict(in_channels=[dims], out_channels=dims, num_outs=1),
    rpn_head=dict(
        in_channels=dims, feat_channels=dims,
        anchor_generator=dict(scales=[2, 4, 8], strides=[16])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=dims, featmap_strides=[16]),
        bbox_head=dict(in_channels=dims, fc_out_channels=128, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=dims, featmap_strides=[16]),
        mask_head=dict(in_channels=dims, conv_out_channels=dims, num_classes=num_classes)))

default_hooks = dict(
    _base_.safe_default_hooks,  # atomic checkpoints, exact resume, NaN stop
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', interval={{_base_.max_iters}},
                    by_epoch=False))
log_processor = dict(by_epoch=False)
