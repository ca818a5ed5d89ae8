# CPU-sized MoCo v3 pretraining on the embedded mini-ImageNet (the contrastive row of the embedded
# table): the recipe above on the tiny ViT of _base_/synthetic_pretrain_cpu.py, its two views at
# 112 px (mmpretrain's MoCo v3 augmentations otherwise), projector and predictor 256 wide.
_base_ = [
    './mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k.py',
    '../_base_/synthetic_pretrain_cpu.py',
]

model = dict(
    backbone=dict(arch={{_base_.cpu_arch}}, patch_size={{_base_.cpu_patch_size}},
                  img_size={{_base_.cpu_img_size}}),
    neck=dict(in_channels=128, hid_channels=256, out_channels=64),
    head=dict(predictor=dict(in_channels=64, hid_channels=256, out_channels=64)))
view_pipeline1 = [dict(_base_.view_pipeline1[0], scale=112), *_base_.view_pipeline1[1:]]
view_pipeline2 = [dict(_base_.view_pipeline2[0], scale=112), *_base_.view_pipeline2[1:]]
train_dataloader = dict(
    batch_size={{_base_.cpu_batch_size}}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={{_base_.cpu_data_root}}, pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='MultiView', num_views=[1, 1], transforms=[view_pipeline1, view_pipeline2]),
        dict(type='PackInputs')]))
optim_wrapper = dict(_base_.cpu_optim_wrapper, paramwise_cfg=dict(
    _base_.cpu_optim_wrapper.paramwise_cfg, custom_keys={'backbone.patch_embed': dict(lr_mult=0.)}))
param_scheduler = {{_base_.cpu_param_scheduler}}
train_cfg = {{_base_.cpu_train_cfg}}
default_hooks = {{_base_.cpu_default_hooks}}
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False)
