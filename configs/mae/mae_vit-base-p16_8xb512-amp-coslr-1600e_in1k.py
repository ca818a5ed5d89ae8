# MAE ViT-B/16 pretraining on ImageNet-1k: mmpretrain's MAE recipe and algorithm (MAE,
# MAEPretrainDecoder, MAEPretrainHead) with our ViT as the encoder, so that the weights transfer
# to every task of the suite without conversion.
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py'
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='lomar_transfer.MAEPretrainViT', arch='base',
                  patch_size=16, img_size=224, mask_ratio=0.75))
# no weight decay on our norm layers either (mmpretrain's 'ln' key matches its own names only)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
# re-declared: inherited across packages it carries a `_scope_` key that default_collate rejects
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
resume = False  # tools/train.py --resume decides
