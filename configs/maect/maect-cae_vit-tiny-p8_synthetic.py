# MAE-CT tuning of the CPU-sized CAE backbone (configs/cae/cae_vit-tiny-p8_synthetic.py).
_base_ = './maect-mae_vit-tiny-p8_synthetic.py'

model = dict(backbone=dict(
    qkv_bias='qv', layer_scale_init_value=0.1, sincos_order='cae',
    pretrained='work_dirs/cae_vit-tiny-p8_synthetic/iter_100.pth'))
