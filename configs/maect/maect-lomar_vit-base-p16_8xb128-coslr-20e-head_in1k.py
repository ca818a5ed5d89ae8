# MAE-CT phase 1 (head only) for a LoMaR ViT-B/16
# (configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py);
# the MAE ViT-B/16 recipe otherwise.
_base_ = './maect-mae_vit-base-p16_8xb128-coslr-20e-head_in1k.py'

model = dict(backbone=dict(
    rel_pos='contextual', pos_embed=None,
    pretrained='work_dirs/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k/epoch_1600.pth'))
