# Mask R-CNN on a pretrained ViT-B/16 for COCO: the ViTDet protocol (Li et al. 2022), as the
# official detectron2 projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py (D2) runs it
# (mmdet's projects/ViTDet is its port; not in mmdet's wheel, so its pieces live here).
#   backbone: windowed attention 14x14, global in blocks 3/6/9/12 (models/mask_rcnn_vitdet.py:
#     25-39); decomposed relative position, zero-initialised, tables sized per block: 27 in
#     window blocks, 127 in global ones (:41, vit.py:58-63); the pretrained absolute table
#     (14x14, class slot dropped) is learned and bicubic-resampled to 64x64 in every forward
#     (vit.py:297-301,350-354, utils.py:128-157); no class token; no final norm: the last
#     block's raw output feeds the pyramid (vit.py:356-360); drop path 0.1; LN eps 1e-6.
#   neck: SimpleFeaturePyramid 768 -> 192/384/768/768 -> 256 with LN, 1x1 + 3x3 convs, p6 by
#     max-pooling (mask_rcnn_vitdet.py:44-49, vit.py:363-470).
#   heads: 2-conv RPN (:55), 4conv1fc box head with LN (:52,58-59), mask head with LN (:52).
#   data: LSJ 1024 (scale 0.1-2.0, 1024 crop, flip) for training; test at longest side 1024;
#     both padded to 1024x1024 with zeros after normalisation (coco_loader_lsj.py:8-22,
#     square_pad=1024 in mask_rcnn_vitdet.py:49).
#   optimisation: AdamW lr 1e-4, betas (0.9, 0.999), wd 0.1 except the blocks' LayerNorms and
#     pos_embed (optim.py:18-28, mask_rcnn_vitdet_b_100ep.py:38-40; biases, rel_pos tables and
#     the neck/head LNs are decayed), layer decay 0.7 (embeddings 0.7**13, block i 0.7**(12-i),
#     rest 1), 184375 iterations of 64 images, warm-up 250 iterations from 0.001 (the full rate
#     at iteration 250, so LinearLR ends at 251), steps at 163889 and 177546 (:25-34), AMP.
# Remaining differences, and why:
#   - mmdet's LSJ transforms (cv2 bilinear resize, flip last) instead of D2's (PIL resize,
#     flip first; a flip is as likely either way, so the crops are distributed alike); both
#     recompute the boxes from the cropped masks. The crop offset is D2's: one uniform draw for
#     both sides (FixedSizeCrop, augmentation_impl.py:338-341), where mmdet's RandomCrop draws
#     the two independently.
#   - mmdet's heads initialise as mmdet does (Kaiming convs in the RoI heads where D2 uses
#     c2_msra/c2_xavier fills); both are standard starting points of the same architecture.
#   - no fp16 gradient compression in DDP (train.ddp.fp16_compression): a communication
#     optimisation that mmengine does not expose from a config; the arithmetic is fp32 here.
# Per-method leaves: configs/{lomar,mae,cae}/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py.
# CAE's own detection protocol: configs/*/mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
    '../safety.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)

image_size = (1024, 1024)
norm_cfg = dict(type='lomar_transfer.LN2d', eps=1e-6)  # D2's channel LayerNorm
model = dict(
    # every image padded to 1024x1024 with zeros after normalisation (D2 square_pad=1024)
    data_preprocessor=dict(pad_size_divisor=1024, batch_augments=[
        dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,  # replaces the task config's own backbone
        type='lomar_transfer.VisionTransformer',
        arch='base',
        patch_size=16,
        img_size=1024,
        pretrain_img_size=224,
        pos_embed='learned',
        learned_pos_grid='pretrain',
        with_cls_token=False,
        rel_pos='decomposed',
        window_size=14,
        global_attn_indices=(2, 5, 8, 11),
        drop_path_rate=0.1,
        final_norm=False,
        out_indices=(-1, ),
        out_type='featmap'),
    neck=dict(
        _delete_=True,
        type='lomar_transfer.SimpleFeaturePyramid',
        in_channels=768,
        out_channels=256,
        scales=(4., 2., 1., 0.5),
        norm_cfg=norm_cfg,
        num_outs=5),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256,
                       norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

# test at the longest side 1024 (D2 ResizeShortestEdge(1024, max_size=1024)), not 1333x800
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='lomar_transfer.FixedSizeCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=8,  # x 16 GPUs = 64 images per iteration
                        dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 184375
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=5000)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
    # norm_decay_mult reaches torch.nn norms only: the blocks' LayerNorms, as D2's
    # weight_decay_norm=0 (the LN2d of the neck and heads keep their decay)
    paramwise_cfg=dict(layer_decay_rate=0.7, norm_decay_mult=0.,
                       custom_keys={'pos_embed': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=251),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[163889, 177546], gamma=0.1),
]
default_hooks = dict(
    _base_.safe_default_hooks,  # atomic checkpoints, exact resume, NaN stop
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', by_epoch=False, interval=5000,
                    max_keep_ckpts=2),
    logger=dict(interval=50))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=64)
