# Mask R-CNN on a pretrained ViT-B/16 for COCO: CAE's own detection protocol, the recipe behind
# CAE's published numbers (300 ep 48.3 APbox / 42.7 APmask, 1600 ep 50.3 / 44.2). Official
# lxtGH/CAE downstream_tasks/detection/evaluation/object_detection/configs/mask_rcnn/
# vit_base_giou_4conv1f_coco_maskrcnn_1x_cae_sincos_init0.1_lr00003.py ("cfg") and its bases
# _base_/models/mask_rcnn_vit_fpn.py ("base"), mmcv_custom/register_backbone.py ("rb"):
#   backbone: global attention in every block, class token in the sequence, no relative
#     position (cfg:30), the pretrained sin-cos table frozen and bicubic-resampled to the input
#     grid (cfg:28-29, rb:64-67,186-208, checkpoint.py:549-572), q/v biases, LayerScale 0.1
#     (cfg:25), drop path 0.2 (cfg:27), no final norm (rb:48,78-79), blocks 4/6/8/12 (base:5-16).
#   neck: fpn1-4 on the four blocks (deconv-BN-GELU-deconv, deconv, identity, max-pool; rb:81-95)
#     then FPN 768 -> 256, five levels (base:17-21).
#   heads: 4conv1fc box head with SyncBN, decoded boxes with GIoU loss x10 (cfg:33-52); mask
#     head with 4 convs, no norm (base:64-71); RPN keeps 2000 proposals per image in training
#     (2000 per level before NMS; base:84-90), 1000 in test (base:107-113).
#   data: flip, then either a resize with the short side in 480..800 (step 32, long <= 1333) or
#     a resize to 400/500/600, a random 384-600 crop and the same resize (cfg:58-90); test at
#     1333x800 (coco_instance.py:15-29).
#   optimisation: AdamW lr 3e-4, betas (0.9, 0.999), wd 0.05, layer decay 0.75 over 12 layers
#     (cfg:101-103), no decay for 1-D parameters and biases
#     (mmcv_custom/layer_decay_optimizer_constructor.py:54); 12 epochs, x0.1 at epochs 9 and 11
#     (cfg:105-106), warm-up 500 iterations from 0.001 (schedule_1x.py:5-10); 2 x 16 images.
# Remaining differences, and why:
#   - the frozen table lives at the pretraining grid (14x14) and is resampled once per forward
#     to the input grid; CAE resamples it to 42x68 at load and again per forward (a second
#     bicubic pass that changes the table by interpolation error only).
#   - mmengine AMP instead of apex O1 (apex is not installable here; same fp16 arithmetic).
# Per-method leaves: configs/{lomar,mae,cae}/mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../safety.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)
default_hooks = _base_.safe_default_hooks  # atomic checkpoints, exact resume, NaN stop

norm_cfg = dict(type='SyncBN', requires_grad=True)  # mmengine uses BN when not distributed
model = dict(
    backbone=dict(
        _delete_=True,
        type='lomar_transfer.VisionTransformer',
        arch='base',
        patch_size=16,
        img_size=224,
        pretrain_img_size=224,
        pos_embed='learned',
        learned_pos_grid='pretrain',  # frozen below (lr_mult=0)
        with_cls_token=True,
        qkv_bias='qv',
        layer_scale_init_value=0.1,
        drop_path_rate=0.2,
        final_norm=False,
        out_indices=(3, 5, 7, 11),
        out_type='featmap'),
    neck=[dict(type='lomar_transfer.ViTFeaturePyramid', in_channels=768, scales=(4, 2, 1, 0.5),
               norm_cfg=norm_cfg),
          dict(type='FPN', in_channels=[768] * 4, out_channels=256, num_outs=5)],
    roi_head=dict(
        bbox_head=dict(
            _delete_=True,
            type='ConvFCBBoxHead',
            num_shared_convs=4,
            num_shared_fcs=1,
            in_channels=256,
            conv_out_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            reg_decoded_bbox=True,
            norm_cfg=norm_cfg,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))),
    # 2000 proposals per image in training (base:84-90); mmdet's base keeps 1000
    train_cfg=dict(rpn_proposal=dict(nms_pre=2000, max_per_img=2000)))

_short = [(1333, s) for s in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=_short, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(1333, 400), (1333, 500), (1333, 600)],
              keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
              allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=_short, keep_ratio=True)],
    ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=4,  # x 16 GPUs = 32 images per iteration
                        dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75, flat_decay_mult=0., bias_decay_mult=0.,
                       custom_keys={'pos_embed': dict(lr_mult=0., decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=501),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=12, milestones=[9, 11], gamma=0.1),
]
auto_scale_lr = dict(base_batch_size=32)
