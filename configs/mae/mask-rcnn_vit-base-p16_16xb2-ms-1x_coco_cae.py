# COCO Mask R-CNN, CAE's own detection protocol, with the MAE ViT-B/16 pretrained by
# configs/mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# MAE's full qkv bias; LayerScale 0.1 started anew, as CAE's code builds it for any checkpoint.
_base_ = [
    '../_base_/transfer/mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py',
    '../_base_/encoders/mae.py',
]

model = dict(backbone=dict(
    _base_.mae_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
