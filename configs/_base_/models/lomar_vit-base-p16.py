# LoMaR ViT-B/16 (arXiv 2206.00790): 4 random 7x7-patch windows per image, 80% of each window
# masked, masked + visible tokens encoded per window with the relative position encoding (no
# absolute one), linear pixel predictor, normalised-pixel MSE on masked patches.
_base_ = '../encoders/lomar.py'

model = dict(
    type='lomar_transfer.LoMaR',
    data_preprocessor=dict(
        type='mmpretrain.SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        _base_.lomar_encoder,
        type='lomar_transfer.LoMaRViT',
        arch='base',
        patch_size=16,
        img_size=224,
        window_patches=7,
        num_windows=4,
        mask_ratio=0.8,
        rel_pos_ratio=1.9),
    head=dict(
        type='lomar_transfer.LoMaRHead',
        in_channels=768,
        patch_size=16,
        norm_pix=True,
        loss=dict(type='mmpretrain.PixelReconstructionLoss', criterion='L2')))
