from . import Source
from ._traits import IRPE, QV_BIAS, TIMM_LS

# facebookresearch/mae: one bias for q, k and v (models_mae.py:40); the fixed 2-D sin-cos table
# in MAE's channel order (models_mae.py:68, util/pos_embed.py); timm 0.3 blocks (no layer scale).
# Its naming is timm's: detected as 'timm', which converts it the same way.
SOURCE = Source(
    name='mae', release='facebookresearch/mae mae_pretrain_vit_base.pth ({"model": ...})',
    encoder=dict(qkv_bias=True, sincos_order='mae'), never=(QV_BIAS, IRPE, TIMM_LS),
    pretraining=('pixels', 1600, 'IN-1k'))
