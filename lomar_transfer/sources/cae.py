from . import GAMMA_RULES, TIMM_RULES, Source
from ._traits import IRPE, QKV_BIAS, TIMM_LS

# lxtGH/CAE: learnable q and v biases, k without (models/modeling_finetune.py:68-75, 111-115),
# LayerScale 0.1 (scripts/cae_base_800e.sh:24), the fixed 2-D sin-cos table (--sincos_pos_emb,
# :28) in CAE's channel order; the encoder under 'encoder.' in pretraining checkpoints
SOURCE = Source(
    name='cae', release='lxtGH/CAE pretraining checkpoints (encoder under "encoder.")',
    encoder=dict(qkv_bias='qv', layer_scale_init_value=0.1, sincos_order='cae'),
    prefixes=('encoder.', ), rules=GAMMA_RULES + TIMM_RULES,
    marks=(r'^(encoder\.)?blocks\.\d+\.gamma_1$', r'^encoder\.blocks\.'),
    unless=(r'^rel_pos_bias\.', r'^lm_head\.'), never=(QKV_BIAS, IRPE, TIMM_LS),
    pretraining=('pixels, our offline variant', 300, 'IN-1k'))
