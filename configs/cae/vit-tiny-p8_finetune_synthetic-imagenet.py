# ImageNet fine-tuning on the mini-ImageNet of the CAE backbone pretrained by
# configs/cae/cae_vit-tiny-p8_synthetic.py (run it first, or set model.backbone.init_cfg).
_base_ = [
    '../_base_/transfer/vit-tiny-p8_finetune_synthetic-imagenet.py',
    '../_base_/encoders/cae.py',
]

model = dict(backbone=dict(
    _base_.cae_encoder,
    rel_pos_bias=True,  # CAE fine-tuning: a relative position bias per block (--rel_pos_bias)
    fc_norm_from_norm=True,  # and fc_norm starts from the pretrained final norm
    init_cfg=dict(type='Pretrained', checkpoint='work_dirs/cae_vit-tiny-p8_synthetic')))
