# MAE-CT phase 2 (tuning) for an MAE ViT-L/16, after ml-jku/MAE-CT
# yamls/stage3_maect_contrastive_tuning/large16.yaml: top 12 of 24 blocks (:46-58),
# temperature 0.2 (:73), 20 epochs (:100); otherwise the ViT-B/16 tuning phase.
_base_ = './maect-mae_vit-base-p16_8xb128-coslr-20e-tune_in1k.py'

model = dict(
    backbone=dict(arch='large', frozen_stages=12, out_type='cls_token'),
    neck=dict(in_channels=1024),
    head=dict(temperature=0.2))
load_from = 'work_dirs/maect-mae_vit-large-p16_8xb128-coslr-20e-head_in1k/iter_25020.pth'
