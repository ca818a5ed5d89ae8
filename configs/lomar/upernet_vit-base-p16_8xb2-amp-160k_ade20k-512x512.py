# ADE20K UperNet, mmseg MAE protocol, with the LoMaR ViT-B/16 pretrained by
# configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# Any other source loads too (e.g. the official LoMaR release, timm, mmpretrain): set init_cfg.
# LoMaR keeps its own relative position (contextual RPE in every block) instead of BEiT's
# bias tables, and no absolute table (LoMaR has none).
_base_ = [
    '../_base_/transfer/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=dict(
    _base_.lomar_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
