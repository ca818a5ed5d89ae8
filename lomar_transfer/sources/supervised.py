from . import Source
from ._traits import IRPE, QV_BIAS

# Supervised ImageNet-1k: DeiT-B (facebookresearch/deit models.py deit_base_patch16_224: timm's
# VisionTransformer, patch 16, 768 wide, 12 x 12 heads, qkv bias, LayerNorm eps 1e-6; released
# as {"model": ...}, main.py) and timm's vit_base_patch16_224 (a bare state dict). Learned
# position table with a class-token slot; the classifier 'head' is dropped. Naming: timm's.
SOURCE = Source(
    name='supervised', release='facebookresearch/deit deit_base_patch16_224-b5f2ef4d.pth '
    '({"model": ...}), timm vit_base_patch16_224 (bare)',
    encoder=dict(pos_embed='learned', qkv_bias=True), never=(QV_BIAS, IRPE),
    references=(
        dict(column='top-1 ft', value=81.8, pretraining=('supervised', 300),
             protocol='DeiT supervised training on IN-1k, 300 ep (the pretraining itself)',
             source='github facebookresearch/moco-v3 README.md:85'), ))
