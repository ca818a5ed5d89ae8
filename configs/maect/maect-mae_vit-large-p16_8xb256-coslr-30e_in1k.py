# MAE-CT for an MAE ViT-L/16: top 6 of 24 blocks tuned; otherwise the ViT-B setting.
_base_ = './maect-mae_vit-base-p16_8xb256-coslr-30e_in1k.py'

model = dict(
    backbone=dict(arch='large', frozen_stages=18,
                  pretrained='checkpoints/mae_pretrain_vit_large.pth'),  # official release
    neck=dict(in_channels=1024))
