# COCO Mask R-CNN, CAE's own detection protocol, with the LoMaR ViT-B/16 pretrained by
# configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# LoMaR's own relative position (contextual RPE) and no absolute table; full qkv bias and
# LayerScale 0.1 started anew, as CAE's code builds them for any checkpoint.
_base_ = [
    '../_base_/transfer/mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=dict(
    _base_.lomar_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
