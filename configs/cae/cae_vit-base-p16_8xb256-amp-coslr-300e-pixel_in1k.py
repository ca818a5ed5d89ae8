# CAE ViT-B/16 with RGB pixel targets (per-patch normalised, MSE) instead of DALL-E tokens: OUR
# offline variant (the DALL-E tokenizer weights cannot be fetched here) and the suite's default
# for CAE. It has NO published number: CAE's README reports DALL-E-target models only. Same
# encoder, regressor, masking, alignment loss and schedule as the DALL-E recipe; the second view
# is the same crop at the same size. The alignment weight 2 was tuned by CAE for the
# cross-entropy target, not for a pixel MSE; it is kept, untuned.
_base_ = './cae_vit-base-p16_8xb256-amp-coslr-300e_in1k.py'

mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
data_preprocessor = dict(mean=mean, std=std, second_mean=mean, second_std=std)
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResizedCropAndInterpolationWithTwoPic', size=224, second_size=224,
         interpolation='bicubic', second_interpolation='bicubic', scale=(0.08, 1.0)),
    dict(type='BEiTMaskGenerator', input_size=(14, 14), num_masking_patches={{_base_.num_masked}},
         max_num_patches=None, min_num_patches=16),
    dict(type='PackInputs'),
]))
model = dict(
    neck=dict(num_classes=16 * 16 * 3),
    head=dict(_delete_=True, type='lomar_transfer.CAEPixelHead',
              loss=dict(type='lomar_transfer.CAEPixelLoss', lambd=2)),
    target_generator=dict(_delete_=True, type='lomar_transfer.PixelTarget', patch_size=16,
                          norm_pix=True))
