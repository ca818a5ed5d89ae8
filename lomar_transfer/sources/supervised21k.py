from . import Source
from ._traits import IRPE, QV_BIAS

# Supervised ImageNet-21k: timm's vit_base_patch16_224_in21k (a bare state dict in timm's naming;
# the older release also holds 'pre_logits.fc', a representation layer before the head: dropped
# with the head, as timm >= 0.9 drops it on load)
SOURCE = Source(
    name='supervised21k', release='timm vit_base_patch16_224_in21k (bare)',
    encoder=dict(pos_embed='learned', qkv_bias=True), never=(QV_BIAS, IRPE))
