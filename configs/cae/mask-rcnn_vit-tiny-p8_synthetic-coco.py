# Mask R-CNN on the mini-COCO with the CAE backbone pretrained by
# configs/cae/cae_vit-tiny-p8_synthetic.py (run it first, or set model.backbone.init_cfg).
_base_ = [
    '../_base_/transfer/mask-rcnn_vit-tiny-p8_synthetic-coco.py',
    '../_base_/encoders/cae.py',
]

model = dict(backbone=dict(
    _base_.cae_encoder,
    init_cfg=dict(type='Pretrained', checkpoint='work_dirs/cae_vit-tiny-p8_synthetic')))
