# MAE-CT phase 1 (head only) for a CAE ViT-B/16
# (configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py);
# the MAE ViT-B/16 recipe otherwise.
_base_ = [
    './maect-mae_vit-base-p16_8xb128-coslr-20e-head_in1k.py',
    '../_base_/encoders/cae.py',
]

model = dict(backbone=dict(
    _base_.cae_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k')))
