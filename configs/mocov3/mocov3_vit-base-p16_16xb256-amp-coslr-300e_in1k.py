# MoCo v3 ViT-B/16 pretraining on ImageNet-1k, the contrastive row: mmpretrain's MoCo v3 recipe
# and algorithm (MoCoV3: momentum encoder, 3-layer projector, 2-layer predictor, symmetric
# InfoNCE at temperature 0.2) with our ViT as the encoder, whose feature is the class token after
# the final norm (moco-v3 vits.py on timm's forward_features, x[:, 0]).
# Encoder as vits.py: the fixed sin-cos table (:53-69), xavier-uniform linear layers (:36-47); the
# patch projection is not updated (stop_grad_conv1, :49-51, CONFIG.md:160), here by a zero lr on
# it. Left different: vits.py:40-43 initialises the qkv weight with the fan of one of q, k, v.
_base_ = [
    'mmpretrain::mocov3/mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k.py',
    '../_base_/safety.py',
    '../_base_/encoders/mocov3.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)
default_hooks = _base_.safe_default_hooks  # atomic checkpoints, exact resume, NaN stop

model = dict(
    backbone=dict(_base_.mocov3_encoder, _delete_=True, type='lomar_transfer.VisionTransformer',
                  arch='base', patch_size=16, img_size=224, out_type='cls_token',
                  linear_init='xavier_uniform'))
# torch's AdamW betas, which main_moco.py:229 leaves at their default
optim_wrapper = dict(optimizer=dict(betas=(0.9, 0.999)),
                     paramwise_cfg=dict(custom_keys={'backbone.patch_embed': dict(lr_mult=0.)}))
# re-declared: inherited across packages it carries a `_scope_` key that default_collate rejects
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
resume = False  # tools/train.py --resume decides
