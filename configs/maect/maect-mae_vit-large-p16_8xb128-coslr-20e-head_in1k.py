# MAE-CT phase 1 (head only) for an MAE ViT-L/16 (the official MAE release), after
# ml-jku/MAE-CT yamls/stage2_maect_prepare_head/large16.yaml: as ViT-B/16 with class-token
# features and a 1024-d projector input.
_base_ = './maect-mae_vit-base-p16_8xb128-coslr-20e-head_in1k.py'

model = dict(
    backbone=dict(arch='large', frozen_stages=24, out_type='cls_token',
                  init_cfg=dict(type='Pretrained',
                                checkpoint='checkpoints/mae_pretrain_vit_large.pth')),
    neck=dict(in_channels=1024))
