# ImageNet linear probing with the LoMaR ViT-B/16 pretrained by
# configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# Any other source loads too (e.g. the official LoMaR release, timm, mmpretrain): set init_cfg.
_base_ = [
    '../_base_/transfer/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=dict(
    _base_.lomar_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
