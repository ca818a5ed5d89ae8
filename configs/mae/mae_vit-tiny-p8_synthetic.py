# CPU-sized MAE pretraining on the embedded mini-ImageNet (about a minute on 2 cores): mmpretrain's
# MAE (mask ratio 0.75, a light decoder) on a tiny ViT, see _base_/synthetic_pretrain_cpu.py.
_base_ = [
    './mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
    '../_base_/synthetic_pretrain_cpu.py',
]

model = dict(
    backbone=dict(arch={{_base_.cpu_arch}}, patch_size={{_base_.cpu_patch_size}},
                  img_size={{_base_.cpu_img_size}}),
    neck=dict(patch_size={{_base_.cpu_patch_size}}, embed_dim=128, decoder_embed_dim=64,
              decoder_depth=2, decoder_num_heads=4, num_patches=196),
    head=dict(patch_size={{_base_.cpu_patch_size}}))
train_dataloader = dict(
    batch_size={{_base_.cpu_batch_size}}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={{_base_.cpu_data_root}}, pipeline=[
        dict(type='LoadImageFromFile'), {{_base_.cpu_crop}}, dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs')]))
optim_wrapper = {{_base_.cpu_optim_wrapper}}
param_scheduler = {{_base_.cpu_param_scheduler}}
train_cfg = {{_base_.cpu_train_cfg}}
default_hooks = {{_base_.cpu_default_hooks}}
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False)
