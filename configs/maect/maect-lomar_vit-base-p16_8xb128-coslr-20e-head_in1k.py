# MAE-CT phase 1 (head only) for a LoMaR ViT-B/16
# (configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py);
# the MAE ViT-B/16 recipe otherwise.
_base_ = [
    './maect-mae_vit-base-p16_8xb128-coslr-20e-head_in1k.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=dict(
    _base_.lomar_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
