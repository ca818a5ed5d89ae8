# ADE20K UperNet, mmseg MAE protocol, with the LoMaR ViT-B/16 pretrained by
# configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# Any other source loads too (e.g. the official LoMaR release, timm, mmpretrain): set pretrained=.
# LoMaR keeps its own relative position (contextual RPE in every block) instead of BEiT's
# bias tables, and no absolute table (LoMaR has none).
_base_ = '../_base_/transfer/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

model = dict(backbone=dict(
    rel_pos='contextual', rel_pos_bias=False, pos_embed=None,
    pretrained='work_dirs/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k/epoch_1600.pth'))
