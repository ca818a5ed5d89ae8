# MAE-CT's linear probe (ml-jku/MAE-CT yamls/probe.yaml) of a tuned ViT-B/16, on images:
# frozen encoder (the tuning run's EMA weights), mean-pooled patch tokens after the final norm
# (B/16; class token for L/H), BatchNorm without affine parameters (eps 1e-5) then a linear
# layer (trunc-normal std 0.01) (linear_head.py:18-23); SGD momentum 0.9, no weight decay
# (:57-59); 50 epochs at batch 1024 (4 x 256) (:145-147); linear warm-up from 0 over 5 epochs,
# then cosine to 0 (:60-63); crop (0.08-1, bicubic) + flip (:7-15), test resize 256 (bicubic)
# + crop 224 (:20-26). (The inherited mmpretrain pipelines resize bilinearly: replaced.)
# The official run trains one head per learning rate in the same pass and reports the best:
#   for lr in 0.1 0.09 0.08 0.07 0.06 0.05 0.04 0.03 0.02 0.01; do
#     tools/dist_train.sh configs/maect/maect-probe_vit-base-p16_4xb256-coslr-50e_in1k.py 4 \
#       --work-dir work_dirs/maect-probe/lr$lr --cfg-options optim_wrapper.optimizer.lr=$(python \
#       -c "print($lr * 1024 / 256)") model.backbone.pretrained=work_dirs/<tuning run>/iter_N.pth
#   done
# (tools/feature_eval.py runs the same sweep on cached test-view features in one process.)
_base_ = '../_base_/transfer/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'

model = dict(
    backbone=dict(init_cfg=dict(
        type='Pretrained',
        checkpoint='work_dirs/maect-mae_vit-base-p16_8xb128-coslr-20e-tune_in1k')),
    neck=dict(eps=1e-5))
train_dataloader = dict(batch_size=256, dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
epochs = 50
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper', dtype='bfloat16',
    optimizer=dict(type='SGD', lr=0.1 * 1024 / 256, momentum=0.9, weight_decay=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - 5, by_epoch=True, begin=5, end=epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=epochs)
auto_scale_lr = dict(base_batch_size=1024)
