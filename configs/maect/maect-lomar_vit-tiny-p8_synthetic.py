# MAE-CT tuning of the CPU-sized LoMaR backbone (configs/lomar/lomar_vit-tiny-p8_synthetic.py).
_base_ = [
    './maect-mae_vit-tiny-p8_synthetic.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=dict(
    _base_.lomar_encoder,
    init_cfg=dict(type='Pretrained', checkpoint='work_dirs/lomar_vit-tiny-p8_synthetic')))
