# COCO Mask R-CNN, CAE's own detection protocol, with the CAE ViT-B/16 pretrained by
# configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py (the pretraining the benchmark
# runs for CAE; for the DALL-E-target model set pretrained= to its work dir).
_base_ = '../_base_/transfer/mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py'

model = dict(backbone=dict(
    sincos_order='cae',
    pretrained='work_dirs/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k/epoch_300.pth'))
