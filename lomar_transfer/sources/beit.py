from . import GAMMA_RULES, TIMM_RULES, Source
from ._traits import IRPE, QKV_BIAS

# microsoft/unilm BEiT: beit_base_patch16_224_pt22k.pth {"model": ...} (modeling_pretrain.py):
# no absolute position table (use_abs_pos_emb=False), one relative position bias table shared by
# the blocks ('rel_pos_bias.relative_position_bias_table'), LayerScale 'gamma_1/2', q/v biases
# with a zero k bias, 'mask_token' and 'lm_head' (dropped). Fine-tuning copies the shared table
# into every block (run_class_finetuning.py:337-344), which the ViT's load hook does.
SOURCE = Source(
    name='beit', release='microsoft/unilm beit_base_patch16_224_pt22k.pth ({"model": ...})',
    encoder=dict(pos_embed=None, qkv_bias='qv', layer_scale_init_value=0.1, rel_pos_bias=True),
    rules=GAMMA_RULES + TIMM_RULES,
    marks=(r'^rel_pos_bias\.relative_position_bias_table$', r'^lm_head\.'),
    never=(QKV_BIAS, IRPE))
