# ADE20K UperNet with the LoMaR ViT-B/16 pretrained by
# configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# Any other source loads too (e.g. the official LoMaR release, timm, mmpretrain): set pretrained=.
_base_ = '../_base_/transfer/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

model = dict(backbone=dict(
    rel_pos=True, pos_embed=None,
    pretrained='work_dirs/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k/epoch_1600.pth'))
