# ADE20K UperNet, CAE's own segmentation protocol, with the LoMaR ViT-B/16 pretrained by
# configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# LoMaR's own relative position (contextual RPE) instead of BEiT's tables, no absolute table;
# lr 1e-4: CAE's value for 1600-epoch pretraining (README.md:59-64).
_base_ = [
    '../_base_/transfer/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=dict(
    _base_.lomar_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
