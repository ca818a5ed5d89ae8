# ImageNet linear probing with the CAE ViT-B/16 pretrained by
# configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py (the pretraining the benchmark
# runs for CAE; for the DALL-E-target model set pretrained= to its work dir).
# Any other source loads too (e.g. the official CAE release, timm, mmpretrain): set pretrained=.
_base_ = '../_base_/transfer/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'

model = dict(backbone=dict(
    pos_embed='sincos', sincos_order='cae', qkv_bias='qv', layer_scale_init_value=0.1,
    pretrained='work_dirs/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k/epoch_300.pth'))
