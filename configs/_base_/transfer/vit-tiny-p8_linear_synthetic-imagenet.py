# ImageNet linear probing (MAE protocol) of the CPU-sized pretrained ViT on the embedded
# mini-ImageNet: frozen backbone, pooled features -> BatchNorm without affine (mmpretrain's
# ClsBatchNormNeck) -> linear classifier, LARS + cosine, no augmentation beyond crop + flip.
_base_ = './vit-tiny-p8_finetune_synthetic-imagenet.py'

model = dict(
    # the pretrained final norm on every token, then the mean (as the ViT-B linear config);
    # the fine-tune base's fresh fc_norm is not part of a frozen-feature probe
    backbone=dict(frozen_stages=4, drop_path_rate=0., final_norm=True),
    neck=dict(_delete_=True, type='ClsBatchNormNeck', input_features={{_base_.dims}}),
    head=dict(loss=dict(_delete_=True, type='CrossEntropyLoss'),
              init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]),
    train_cfg=dict(_delete_=True))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=1.0, weight_decay=0.0, momentum=0.9))
