# ImageNet linear probing on the mini-ImageNet of the MAE backbone pretrained by
# configs/mae/mae_vit-tiny-p8_synthetic.py (run it first, or set model.backbone.pretrained).
_base_ = '../_base_/transfer/vit-tiny-p8_linear_synthetic-imagenet.py'

model = dict(backbone=dict(
    pos_embed='sincos',
    pretrained='work_dirs/mae_vit-tiny-p8_synthetic/iter_100.pth'))
