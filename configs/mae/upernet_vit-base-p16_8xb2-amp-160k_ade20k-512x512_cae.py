# ADE20K UperNet, CAE's own segmentation protocol, with the MAE ViT-B/16 pretrained by
# configs/mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# MAE's full qkv bias; lr 1e-4: CAE's value for 1600-epoch pretraining (README.md:59-64).
_base_ = [
    '../_base_/transfer/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py',
    '../_base_/encoders/mae.py',
]

model = dict(backbone=dict(
    _base_.mae_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
