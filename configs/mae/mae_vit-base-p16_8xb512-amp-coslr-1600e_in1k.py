# MAE ViT-B/16 pretraining on ImageNet-1k: mmpretrain's MAE recipe and algorithm (MAE,
# MAEPretrainDecoder, MAEPretrainHead) with our ViT as the encoder, so that the weights transfer
# to every task of the suite without conversion.
_base_ = [
    'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
    '../_base_/safety.py',
    '../_base_/encoders/mae.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)
default_hooks = _base_.safe_default_hooks  # atomic checkpoints, exact resume, NaN stop

model = dict(
    backbone=dict(_base_.mae_encoder, _delete_=True, type='lomar_transfer.MAEPretrainViT',
                  arch='base', patch_size=16, img_size=224, mask_ratio=0.75))
# The official weight-decay groups (main_pretrain.py:179, timm add_weight_decay): none for 1-D
# parameters and biases, decay for the rest, the class and mask tokens included (mmpretrain's
# recipe exempts the tokens). Linear layers are xavier-uniform as models_mae.py:85-93 (the
# backbone's linear_init default). Remaining differences from facebookresearch/mae: mmpretrain's
# data pipeline and lr schedule (LinearLR from 1e-4 instead of lr_sched from 0).
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, flat_decay_mult=0., bias_decay_mult=0.))
# re-declared: inherited across packages it carries a `_scope_` key that default_collate rejects
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
resume = False  # tools/train.py --resume decides
