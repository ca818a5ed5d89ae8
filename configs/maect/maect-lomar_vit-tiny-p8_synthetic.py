# MAE-CT tuning of the CPU-sized LoMaR backbone (configs/lomar/lomar_vit-tiny-p8_synthetic.py).
_base_ = './maect-mae_vit-tiny-p8_synthetic.py'

model = dict(backbone=dict(
    rel_pos=True, pos_embed=None,
    pretrained='work_dirs/lomar_vit-tiny-p8_synthetic/iter_100.pth'))
