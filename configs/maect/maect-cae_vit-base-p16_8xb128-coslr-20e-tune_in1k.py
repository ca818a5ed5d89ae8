# MAE-CT phase 2 (tuning) for a CAE ViT-B/16, from
# configs/maect/maect-cae_vit-base-p16_8xb128-coslr-20e-head_in1k.py; the MAE ViT-B/16 recipe
# otherwise.
_base_ = [
    './maect-mae_vit-base-p16_8xb128-coslr-20e-tune_in1k.py',
    '../_base_/encoders/cae.py',
]

model = dict(backbone=_base_.cae_encoder)
load_from = 'work_dirs/maect-cae_vit-base-p16_8xb128-coslr-20e-head_in1k/iter_25020.pth'
