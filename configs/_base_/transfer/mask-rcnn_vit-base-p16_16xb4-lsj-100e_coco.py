# Mask R-CNN on a pretrained ViT-B/16 for COCO, the ViTDet recipe (Li et al. 2022; mmdet
# projects/ViTDet): LSJ 1024x1024 crops (mmdet's common/lsj-100e_coco-instance.py), 100 epochs
# as 184375 iterations of 64 images, AdamW lr 1e-4, wd 0.1, layer decay 0.7, drop path 0.1,
# windowed attention (14x14) with global attention in blocks 3/6/9/12, simple feature pyramid
# from the last block. Heads: mmdet's stock Mask R-CNN ones. Per-method leaves:
# configs/{lomar,mae,cae}/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)

image_size = (1024, 1024)
model = dict(
    data_preprocessor=dict(pad_size_divisor=32, batch_augments=[
        dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,  # replaces the task config's own backbone
        type='lomar_transfer.VisionTransformer',
        arch='base',
        patch_size=16,
        img_size=1024,
        with_cls_token=False,
        window_size=14,
        global_attn_indices=(2, 5, 8, 11),
        drop_path_rate=0.1,
        out_indices=(-1, ),
        out_type='featmap'),
    neck=[dict(type='lomar_transfer.ViTFeaturePyramid', in_channels=768, scales=(4, 2, 1, 0.5)),
          dict(type='FPN', in_channels=[768] * 4, out_channels=256, num_outs=5)])

train_dataloader = dict(batch_size=4, num_workers=8)  # x 16 GPUs = 64 images per iteration
max_iters = 184375
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=5000)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7, custom_keys={
        k: dict(decay_mult=0.)
        for k in ('norm', 'bias', 'pos_embed', 'lookup_table_weight')}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[163889, 177546], gamma=0.1),
]
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=2),
    logger=dict(interval=50))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=64)
