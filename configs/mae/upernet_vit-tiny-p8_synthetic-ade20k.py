# UperNet on the mini-ADE20K with the MAE backbone pretrained by
# configs/mae/mae_vit-tiny-p8_synthetic.py (run it first, or set model.backbone.init_cfg).
_base_ = [
    '../_base_/transfer/upernet_vit-tiny-p8_synthetic-ade20k.py',
    '../_base_/encoders/mae.py',
]

model = dict(backbone=dict(
    _base_.mae_encoder,
    init_cfg=dict(type='Pretrained', checkpoint='work_dirs/mae_vit-tiny-p8_synthetic')))
