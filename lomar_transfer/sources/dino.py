from . import Source
from ._traits import IRPE, QV_BIAS

# facebookresearch/dino: vision_transformer.py vit_base (768, 12 x 12 heads, qkv bias, LayerNorm
# eps 1e-6, :250-254; learned pos_embed with a class slot). dino_vitbase16_pretrain.pth is a bare
# state dict in timm's naming (hubconf.py:57-63; detected as 'timm', converted the same way); the
# full checkpoint {"student": module.backbone.*, "teacher": backbone.* + head.*, "dino_loss",
# ...} (main_dino.py:278-287) gives its teacher, as utils.py:71-82 load_pretrained_weights does
# (checkpoint_key 'teacher', eval_linear.py:264)
SOURCE = Source(
    name='dino', release='facebookresearch/dino dino_vitbase16_pretrain.pth (bare), '
    'dino_vitbase16_pretrain_full_checkpoint.pth (teacher)',
    encoder=dict(pos_embed='learned', qkv_bias=True),
    state_keys=('teacher', 'state_dict', 'model'), prefixes=('backbone.', 'module.backbone.'),
    marks=(r'^dino_loss$', r'^teacher$'), unless=(r'^ibot_loss$', r'masked_embed$'),
    never=(QV_BIAS, IRPE),
    references=(
        dict(column='top-1 lin', value=78.2, pretraining=('self-distillation', None),
             protocol='DINO linear evaluation (eval_linear.py, 100 ep)',
             source='github facebookresearch/dino README.md:48-51 (k-NN 76.1)'), ))
