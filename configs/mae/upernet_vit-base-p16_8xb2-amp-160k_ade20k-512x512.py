# ADE20K UperNet, mmseg MAE protocol, with the MAE ViT-B/16 pretrained by
# configs/mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# Any other source loads too (e.g. the official mae_pretrain_vit_base.pth, timm,
# mmpretrain): set init_cfg.
_base_ = [
    '../_base_/transfer/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py',
    '../_base_/encoders/mae.py',
]

model = dict(backbone=dict(
    _base_.mae_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
