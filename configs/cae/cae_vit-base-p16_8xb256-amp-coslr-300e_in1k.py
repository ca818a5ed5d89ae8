# CAE ViT-B/16 pretraining on ImageNet-1k with DALL-E token targets: mmpretrain's CAE recipe and
# algorithm (CAE, CAENeck, CAEHead) with our ViT as encoder and teacher. The DALL-E tokenizer
# weights cannot be downloaded at run time: put dalle_encoder.pth at data/dalle_encoder.pth (or
# set model.target_generator.weights); building the model fails with instructions otherwise.
# Offline default: cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py (RGB targets).
_base_ = [
    'mmpretrain::cae/cae_beit-base-p16_8xb256-amp-coslr-300e_in1k.py',
    '../_base_/safety.py',
    '../_base_/encoders/cae.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)
default_hooks = _base_.safe_default_hooks  # atomic checkpoints, exact resume, NaN stop

#
# Set to the official recipe (github lxtGH/CAE scripts/cae_base_800e.sh, run_pretraining.py)
# where mmpretrain's differs: 98 masked patches (mmpretrain: 75), drop path 0.1 in the encoder,
# regressor and decoder (mmpretrain: 0), xavier-uniform Linear layers in the encoder
# (modeling_cae.py:57-58,76-83), the sin-cos table in CAE's channel order. As the official code:
# AdamW (0.9, 0.999), lr 1.5e-3 at batch 2048, wd 0.05 except 1-D parameters and biases (tokens
# decayed), clip 3.0, 4 + 4 regressor/decoder blocks, layer scale 0.1, alignment weight 2,
# teacher momentum 0. Remaining differences: 300 epochs with the 300-epoch warm-up of CAE's README
# (10) where the script runs 800; LinearLR from 1e-4 instead of 0; the decoder head weight is
# trunc_normal (mmpretrain CAENeck); mmcv instead of PIL resizing.
num_masked = 98
model = dict(
    backbone=dict(_base_.cae_encoder, _delete_=True, type='lomar_transfer.CAEPretrainViT',
                  arch='base', patch_size=16, img_size=224, drop_path_rate=0.1),
    neck=dict(drop_path_rate=0.1, mask_tokens_num=num_masked),
    target_generator=dict(_delete_=True, type='lomar_transfer.DALLETokenizer',
                          weights='data/dalle_encoder.pth'))
# collate_fn re-declared: inherited across packages it carries a `_scope_` key that
# default_collate rejects
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'), dataset=dict(
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomResizedCropAndInterpolationWithTwoPic', size=224, second_size=112,
             interpolation='bicubic', second_interpolation='lanczos', scale=(0.08, 1.0)),
        dict(type='BEiTMaskGenerator', input_size=(14, 14), num_masking_patches=num_masked,
             max_num_patches=None, min_num_patches=16),
        dict(type='PackInputs'),
    ]))
