# Mask R-CNN (stock mmdet) on the CPU-sized pretrained ViT, on the embedded mini-COCO, evaluated
# with CocoMetric (bbox + segm). Per-method configs: configs/{lomar,mae,cae}/mask-rcnn_*.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../datasets/synthetic_coco_instance.py',
    'mmdet::_base_/default_runtime.py',
    './vit-tiny-p8_dense.py',
    '../safety.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)

dims = 128
num_classes = 5
model = dict(
    backbone={{_base_.vit_backbone}},
    neck=[{{_base_.vit_pyramid}},
          dict(type='FPN', in_channels=[dims] * 4, out_channels=dims, num_outs=5)],
    rpn_head=dict(in_channels=dims, feat_channels=dims),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=dims),
        bbox_head=dict(in_channels=dims, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=dims),
        mask_head=dict(in_channels=dims, conv_out_channels=dims, num_classes=num_classes)),
    # CPU-sized sampling: a handful of objects per image needs far fewer proposals and RoIs than
    # COCO's 1000 / 512; RoI feature extraction dominates a CPU step otherwise.
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

max_iters = 140
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = {{_base_.vit_optim_wrapper}}
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', T_max=max_iters - 20, by_epoch=False, begin=20,
         end=max_iters),
]
default_hooks = dict(
    _base_.safe_default_hooks,  # atomic checkpoints, exact resume, NaN stop
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', interval=max_iters, by_epoch=False,
                    max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
