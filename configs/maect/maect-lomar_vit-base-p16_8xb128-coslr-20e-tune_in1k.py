# MAE-CT phase 2 (tuning) for a LoMaR ViT-B/16, from
# configs/maect/maect-lomar_vit-base-p16_8xb128-coslr-20e-head_in1k.py; the MAE ViT-B/16 recipe
# otherwise.
_base_ = [
    './maect-mae_vit-base-p16_8xb128-coslr-20e-tune_in1k.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=_base_.lomar_encoder)
load_from = 'work_dirs/maect-lomar_vit-base-p16_8xb128-coslr-20e-head_in1k/iter_25020.pth'
