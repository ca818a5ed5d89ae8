# COCO Mask R-CNN, ViTDet protocol, with the LoMaR ViT-B/16 pretrained by
# configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py.
# Any other source loads too (e.g. the official LoMaR release, timm, mmpretrain): set init_cfg.
# LoMaR keeps its own relative position: its contextual RPE (one table per block, shared by
# window and global blocks, which it buckets by offset) instead of ViTDet's decomposed
# tables, and no absolute table (LoMaR has none).
_base_ = [
    '../_base_/transfer/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py',
    '../_base_/encoders/lomar.py',
]

model = dict(backbone=dict(
    _base_.lomar_encoder,
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k')))
