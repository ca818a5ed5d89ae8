from . import Source
from ._traits import IRPE, QV_BIAS

# bytedance/ibot: models/vision_transformer.py vit_base (DINO's ViT: 768, 12 x 12 heads, qkv bias,
# eps 1e-6, :283-287; no layer scale by default, init_values=0). checkpoint_teacher.pth:
# {"state_dict": the teacher backbone} (extract_backbone_weights.py:27-41); the full checkpoint
# {"student", "teacher", "ibot_loss", ...} (main_ibot.py:348-358) gives its teacher; the
# student's 'masked_embed' (:171-172) is iBOT's mask token, not an encoder input here
SOURCE = Source(
    name='ibot', release='bytedance/ibot vitb_16/checkpoint_teacher.pth ({"state_dict": ...}), '
    'full checkpoint.pth (teacher)',
    encoder=dict(pos_embed='learned', qkv_bias=True),
    state_keys=('teacher', 'state_dict', 'model'), prefixes=('backbone.', 'module.backbone.'),
    marks=(r'^ibot_loss$', r'(^|\.)masked_embed$'), never=(QV_BIAS, IRPE))
