# COCO Mask R-CNN (ViTDet recipe) with the CAE ViT-B/16 pretrained by
# configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e_in1k.py, in CAE's detection setting:
# features of blocks 4/6/8/12 (fpn1-4), drop path 0.2, layer decay 0.75.
# Any other source loads too (e.g. the official CAE release, timm, mmpretrain): set pretrained=.
_base_ = '../_base_/transfer/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py'

model = dict(
    backbone=dict(
        pos_embed='sincos', sincos_order='cae', qkv_bias='qv', layer_scale_init_value=0.1,
        drop_path_rate=0.2, out_indices=(3, 5, 7, 11),
        pretrained='work_dirs/cae_vit-base-p16_8xb256-amp-coslr-300e_in1k/epoch_300.pth'),
    # one map per block instead of the last block's map replicated (ViTDet)
    neck=[dict(type='lomar_transfer.ViTFeaturePyramid', in_channels=768, scales=(4, 2, 1, 0.5)),
          dict(type='FPN', in_channels=[768] * 4, out_channels=256, num_outs=5)])
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.75))
