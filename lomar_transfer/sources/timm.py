from . import Source
from ._traits import IRPE, QV_BIAS

# timm's ViT (timm/models/vision_transformer.py): the naming the official MAE, LoMaR, DeiT, DINO
# and iBOT releases share, so auto-detection gives it to any bare 'blocks.N.' file
SOURCE = Source(
    name='timm', release="timm vit_* weights ('blocks.N.attn.qkv', learned pos_embed)",
    encoder=dict(pos_embed='learned', qkv_bias=True), marks=(r'^blocks\.\d+\.', ), generic=True,
    never=(QV_BIAS, IRPE))
