# ImageNet linear probing of a pretrained ViT-B/16: mmpretrain's MAE protocol
# (mmpretrain configs/mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py: frozen
# backbone, BatchNorm without affine + linear classifier, LARS lr 6.4 for 16384 images, 90 epochs)
# with the backbone swapped for ours. Features are the average-pooled patch tokens for every
# method (LoMaR has no image-level class token). Per-method leaves:
# configs/{lomar,mae,cae}/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py.
_base_ = [
    'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py', '../safety.py'
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)
default_hooks = _base_.safe_default_hooks  # atomic checkpoints, exact resume, NaN stop

model = dict(backbone=dict(
    _delete_=True,
    type='lomar_transfer.VisionTransformer',
    arch='base',
    patch_size=16,
    img_size=224,
    frozen_stages=12,
    out_type='avg_featmap'))
# LARS lr 6.4 is MAE's blr 0.1 x 16384 / 256 at 8 x 2048 images (FINETUNE.md:142-151); the base
# batch inherited from mmpretrain's AdamW schedule (1024) would scale it 16x too high under
# --auto-scale-lr
auto_scale_lr = dict(base_batch_size=16384)
