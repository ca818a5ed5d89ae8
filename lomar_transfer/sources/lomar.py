from . import Source
from ._traits import IRPE, QV_BIAS, TIMM_LS

# junchen14/LoMaR: no absolute position embedding; the contextual relative position encoding on
# the keys in every block (vision_transformer_irpe.py:37-38, 126; ratio 1.9, the ViT's
# rel_pos_ratio default), which also takes the place of a protocol's BEiT-style table; one bias
# for q, k and v (models_lomar.py:49). Naming: timm's (detected as 'timm').
SOURCE = Source(
    name='lomar', release='junchen14/LoMaR pretraining checkpoints ({"model": ...})',
    encoder=dict(pos_embed=None, rel_pos='contextual', rel_pos_bias=False, qkv_bias=True),
    needs=(IRPE, ), never=(QV_BIAS, TIMM_LS), pretraining=('pixels', 1600, 'IN-1k'))
