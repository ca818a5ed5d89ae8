# Mask R-CNN on the mini-COCO with the LoMaR backbone pretrained by
# configs/lomar/lomar_vit-tiny-p8_synthetic.py (run it first, or set model.backbone.init_cfg).
_base_ = [
    '../_base_/transfer/mask-rcnn_vit-tiny-p8_synthetic-coco.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=dict(
    _base_.lomar_encoder,
    init_cfg=dict(type='Pretrained', checkpoint='work_dirs/lomar_vit-tiny-p8_synthetic')))
