# CPU-sized CAE (pixel targets) pretraining on the embedded mini-ImageNet (about a minute on 2
# cores): 98 of 196 patches masked block-wise (official), 1+1 regressor/decoder blocks, on a tiny ViT, see
# _base_/synthetic_pretrain_cpu.py.
_base_ = [
    './cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py',
    '../_base_/synthetic_pretrain_cpu.py',
]

p = 8
model = dict(
    backbone=dict(arch={{_base_.cpu_arch}}, patch_size=p, img_size={{_base_.cpu_img_size}}),
    neck=dict(num_classes=p * p * 3, embed_dims=128, num_heads=4, regressor_depth=1,
              decoder_depth=1),
    target_generator=dict(patch_size=p))
train_dataloader = dict(
    batch_size={{_base_.cpu_batch_size}}, num_workers=0, persistent_workers=False,
    dataset=dict(
        data_root={{_base_.cpu_data_root}},
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomFlip', prob=0.5),
            dict(type='RandomResizedCropAndInterpolationWithTwoPic', size=112, second_size=112,
                 interpolation='bicubic', second_interpolation='bicubic', scale=(0.2, 1.0)),
            dict(type='BEiTMaskGenerator', input_size=(14, 14), num_masking_patches=98,
                 max_num_patches=None, min_num_patches=16),
            dict(type='PackInputs'),
        ]))
optim_wrapper = {{_base_.cpu_optim_wrapper}}
param_scheduler = {{_base_.cpu_param_scheduler}}
train_cfg = {{_base_.cpu_train_cfg}}
default_hooks = {{_base_.cpu_default_hooks}}
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False)
