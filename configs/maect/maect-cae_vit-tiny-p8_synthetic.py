# MAE-CT tuning of the CPU-sized CAE backbone (configs/cae/cae_vit-tiny-p8_synthetic.py).
_base_ = [
    './maect-mae_vit-tiny-p8_synthetic.py',
    '../_base_/encoders/cae.py',
]

model = dict(backbone=dict(
    _base_.cae_encoder,
    init_cfg=dict(type='Pretrained', checkpoint='work_dirs/cae_vit-tiny-p8_synthetic')))
