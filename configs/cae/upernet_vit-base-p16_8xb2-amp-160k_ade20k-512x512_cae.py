# ADE20K UperNet, CAE's own segmentation protocol, with the CAE ViT-B/16 pretrained by
# configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py (the pretraining the benchmark
# runs for CAE; for the DALL-E-target model point init_cfg at its work dir).
_base_ = [
    '../_base_/transfer/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py',
    '../_base_/encoders/cae.py',
]

model = dict(backbone=dict(
    _base_.cae_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k')))
