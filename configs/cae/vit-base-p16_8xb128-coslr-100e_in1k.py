# ImageNet fine-tuning with the CAE ViT-B/16 pretrained by
# configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py (the pretraining the benchmark
# runs for CAE; for the DALL-E-target model point init_cfg at its work dir).
# Any other source loads too (e.g. the official CAE release, timm, mmpretrain): set init_cfg.
_base_ = [
    '../_base_/transfer/vit-base-p16_8xb128-coslr-100e_in1k.py',
    '../_base_/encoders/cae.py',
]

model = dict(backbone=dict(
    _base_.cae_encoder,
    pos_embed='sincos',  # CAE fine-tuning keeps its fixed table (--sin_pos_emb, default on)
    rel_pos_bias=True,  # CAE fine-tuning: a relative position bias per block (--rel_pos_bias)
    fc_norm_from_norm=True,  # and fc_norm starts from the pretrained final norm
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k')))
