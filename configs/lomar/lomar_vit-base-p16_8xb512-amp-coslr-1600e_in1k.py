# LoMaR ViT-B/16 pretraining on ImageNet-1k, the official recipe (github junchen14/LoMaR README
# pretraining command, main_pretrain_lomar.py): AdamW (0.9, 0.95), wd 0.05 on every parameter
# but 1-D ones and biases (timm add_weight_decay, main_pretrain_lomar.py:194: the class and mask
# tokens and the RPE tables are decayed), base lr 1.5e-4 per 256 images at batch 4096, 20 warm-up
# epochs, cosine, RandomResizedCrop(0.2, 1) bicubic + flip, 4 windows of 7x7 patches, int(0.8 *
# 49) = 39 masked per window, normalised-pixel MSE, xavier-uniform Linear layers. 1600 epochs:
# the released checkpoint (the README command says 400).
# Differences from the official code, kept on purpose:
# - windows are drawn per image (window_sampling='per_image'); the official sampler draws one set
#   per batch and pairs sequence s with image s % B, so each image of a batch of 8 sees a single
#   window position: set model.backbone.window_sampling='official' to reproduce it exactly;
# - mmpretrain's data pipeline (cv2/PIL bicubic via mmcv) instead of torchvision's transforms;
# - the per-epoch lr schedule is mmengine's (LinearLR from 1e-4 instead of MAE's lr_sched from 0).
_base_ = [
    '../_base_/models/lomar_vit-base-p16.py',
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/safety.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)

# re-declared: inherited across packages it carries a `_scope_` key that default_collate rejects
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    # fused: the same AdamW update in one kernel over all tensors, instead of six element-wise
    # kernels per tensor (CPU's default; 10% of a ViT-B step at 448 there, benchmarks/README.md)
    optimizer=dict(type='AdamW', lr=1.5e-4 * 4096 / 256, betas=(0.9, 0.95), weight_decay=0.05,
                   fused=True),
    # timm's rule: no decay for 1-D parameters and biases, decay for everything else
    paramwise_cfg=dict(flat_decay_mult=0., bias_decay_mult=0.))
warmup_epochs, max_epochs = 20, 1600
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    _base_.safe_default_hooks,  # atomic checkpoints, exact resume, NaN stop
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=4096)
