# ImageNet fine-tuning on the mini-ImageNet of the CAE backbone pretrained by
# configs/cae/cae_vit-tiny-p8_synthetic.py (run it first, or set model.backbone.pretrained).
_base_ = '../_base_/transfer/vit-tiny-p8_finetune_synthetic-imagenet.py'

model = dict(backbone=dict(
    pos_embed='sincos', sincos_order='cae', qkv_bias='qv', layer_scale_init_value=0.1,
    rel_pos_bias=True,  # CAE fine-tuning: a relative position bias per block (--rel_pos_bias)
    fc_norm_from_norm=True,  # and fc_norm starts from the pretrained final norm
    pretrained='work_dirs/cae_vit-tiny-p8_synthetic/iter_100.pth'))
