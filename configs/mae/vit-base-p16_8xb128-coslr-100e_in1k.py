# ImageNet fine-tuning with the MAE ViT-B/16 pretrained by
# configs/mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# Any other source loads too (e.g. the official mae_pretrain_vit_base.pth, timm,
# mmpretrain): set init_cfg.
_base_ = [
    '../_base_/transfer/vit-base-p16_8xb128-coslr-100e_in1k.py',
    '../_base_/encoders/mae.py',
]

model = dict(backbone=dict(
    _base_.mae_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
