# MAE-CT for an MAE ViT-H/14 (the paper's 82.2% linear-probe model): top 8 of 32 blocks tuned.
_base_ = './maect-mae_vit-base-p16_8xb256-coslr-30e_in1k.py'

model = dict(
    backbone=dict(arch='huge', patch_size=14, frozen_stages=24,
                  pretrained='checkpoints/mae_pretrain_vit_huge.pth'),  # official release
    neck=dict(in_channels=1280))
