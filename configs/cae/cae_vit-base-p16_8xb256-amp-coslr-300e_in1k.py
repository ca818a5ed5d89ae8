# CAE ViT-B/16 pretraining on ImageNet-1k with DALL-E token targets: mmpretrain's CAE recipe and
# algorithm (CAE, CAENeck, CAEHead) with our ViT as encoder and teacher. The DALL-E tokenizer
# weights cannot be downloaded at run time: put dalle_encoder.pth at data/dalle_encoder.pth (or
# set model.target_generator.weights); building the model fails with instructions otherwise.
# Offline default: cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py (RGB targets).
_base_ = 'mmpretrain::cae/cae_beit-base-p16_8xb256-amp-coslr-300e_in1k.py'
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='lomar_transfer.CAEPretrainViT', arch='base',
                  patch_size=16, img_size=224, layer_scale_init_value=0.1),
    target_generator=dict(_delete_=True, type='lomar_transfer.DALLETokenizer',
                          weights='data/dalle_encoder.pth'))
# re-declared: inherited across packages it carries a `_scope_` key that default_collate rejects
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
