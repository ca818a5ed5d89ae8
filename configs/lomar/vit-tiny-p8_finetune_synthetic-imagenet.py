# ImageNet fine-tuning on the mini-ImageNet of the LoMaR backbone pretrained by
# configs/lomar/lomar_vit-tiny-p8_synthetic.py (run it first, or set model.backbone.pretrained).
_base_ = '../_base_/transfer/vit-tiny-p8_finetune_synthetic-imagenet.py'

model = dict(backbone=dict(
    rel_pos=True, pos_embed=None,
    pretrained='work_dirs/lomar_vit-tiny-p8_synthetic/iter_100.pth'))
