# MAE-CT for an MAE ViT-L/16, after the released ViT-L/16 recipe: top 12 of 24 blocks tuned,
# class-token features, temperature 0.2; otherwise the ViT-B/16 setting (20 + 20 epochs).
_base_ = './maect-mae_vit-base-p16_8xb128-coslr-40e_in1k.py'

model = dict(
    backbone=dict(arch='large', frozen_stages=12, out_type='cls_token',
                  pretrained='checkpoints/mae_pretrain_vit_large.pth'),  # official release
    neck=dict(in_channels=1024),
    head=dict(temperature=0.2))
