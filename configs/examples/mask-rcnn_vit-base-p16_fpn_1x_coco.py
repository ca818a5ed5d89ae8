# mmdet's stock Mask R-CNN R-50-FPN 1x config with a pretrained ViT-B/16 of this suite as its
# backbone. Only `custom_imports`, `model.backbone` and `model.neck` change: the neck rescales the
# ViT's blocks 4/6/8/12 to strides 4-32 (ViTFeaturePyramid) before the stock FPN, the pyramid
# that FPN and the heads expect from a ResNet. The tuned ViT recipes are
# configs/{lomar,mae,cae}/mask-rcnn_*.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../_base_/safety.py']
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)
default_hooks = _base_.safe_default_hooks  # atomic checkpoints, exact resume, NaN stop

model = dict(
    backbone=dict(
        _delete_=True,
        type='lomar_transfer.VisionTransformer',
        arch='base',
        patch_size=16,
        pos_embed='sincos',  # MAE's encoder; other methods' flags: configs/_base_/encoders/
        with_cls_token=False,
        window_size=14,
        global_attn_indices=(2, 5, 8, 11),
        drop_path_rate=0.1,
        out_indices=(3, 5, 7, 11),
        # any supported source (official release, timm, mmpretrain, ours)
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_base.pth')),
    # strides 4, 8, 16, 32, like a ResNet's stages, then mmdet's FPN as in the stock config
    neck=[dict(type='lomar_transfer.ViTFeaturePyramid', in_channels=768, scales=(4, 2, 1, 0.5)),
          dict(type='FPN', in_channels=[768] * 4, out_channels=256, num_outs=5)])
