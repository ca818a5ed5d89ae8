# ImageNet linear probing (MAE protocol) of the CPU-sized pretrained ViT on the embedded
# mini-ImageNet: frozen backbone, pooled features -> BatchNorm without affine (mmpretrain's
# ClsBatchNormNeck) -> linear classifier, LARS + cosine, no augmentation beyond crop + flip.
_base_ = './vit-tiny-p8_finetune_synthetic-imagenet.py'

model = dict(
    backbone=dict(frozen_stages=4, drop_path_rate=0.),
    neck=dict(_delete_=True, type='ClsBatchNormNeck', input_features={{_base_.dims}}),
    head=dict(loss=dict(_delete_=True, type='CrossEntropyLoss'),
              init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]),
    train_cfg=dict(_delete_=True))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=1.0, weight_decay=0.0, momentum=0.9))
