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
    marks=(r'^ibot_loss$', r'(^|\.)masked_embed$'), never=(QV_BIAS, IRPE),
    references=(
        dict(column='top-1 lin', value=79.5, pretraining=('masked self-distillation', None),
             protocol='iBOT linear evaluation (evaluation/eval_linear.py)',
             source='github bytedance/ibot README.md:160-165 (k-NN 77.1)'),
        dict(column='top-1 ft', value=84.0, pretraining=('masked self-distillation', None),
             protocol='iBOT fine-tuning (evaluation/classification_layer_decay)',
             source='github bytedance/ibot README.md:160-165')))
