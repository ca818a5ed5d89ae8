# ImageNet linear probing on the mini-ImageNet of the LoMaR backbone pretrained by
# configs/lomar/lomar_vit-tiny-p8_synthetic.py (run it first, or set model.backbone.init_cfg).
_base_ = [
    '../_base_/transfer/vit-tiny-p8_linear_synthetic-imagenet.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=dict(
    _base_.lomar_encoder,
    init_cfg=dict(type='Pretrained', checkpoint='work_dirs/lomar_vit-tiny-p8_synthetic')))
