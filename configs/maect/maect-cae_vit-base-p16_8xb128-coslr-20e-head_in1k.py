# MAE-CT phase 1 (head only) for a CAE ViT-B/16
# (configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py);
# the MAE ViT-B/16 recipe otherwise.
_base_ = './maect-mae_vit-base-p16_8xb128-coslr-20e-head_in1k.py'

model = dict(backbone=dict(
    qkv_bias='qv', layer_scale_init_value=0.1, sincos_order='cae',
    pretrained='work_dirs/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k/epoch_300.pth'))
