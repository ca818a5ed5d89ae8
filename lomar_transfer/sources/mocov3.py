from . import Source
from ._traits import IRPE, QV_BIAS

# facebookresearch/moco-v3: vits.py vit_base (timm 0.4.9's ViT: patch 16, 768, 12 x 12 heads,
# qkv bias, LayerNorm eps 1e-6, :122-127) with a fixed 2-D sin-cos table stored in the file
# (requires_grad=False, zero class-token slot, vits.py:53-69): the formula CAE took over, so
# sincos_order='cae'. vit-b-300ep.pth.tar: {"state_dict": module.base_encoder.* (the encoder, its
# 'head' the projector), module.momentum_encoder.*, module.predictor.*} (main_moco.py:310-316);
# main_lincls.py:178-185 keeps module.base_encoder.* without head. The linear-probe file
# linear-vit-b-300ep.pth.tar holds the DDP-wrapped classifier: module.* with module.head.*.
SOURCE = Source(
    name='mocov3', release='facebookresearch/moco-v3 vit-b-300ep.pth.tar, '
    'linear-vit-b-300ep.pth.tar',
    encoder=dict(sincos_order='cae', qkv_bias=True),
    prefixes=('module.base_encoder.', 'module.'),
    marks=(r'^module\.base_encoder\.blocks\.', r'^module\.blocks\.\d+\.'),
    never=(QV_BIAS, IRPE), pretraining=('contrastive', 300, 'IN-1k'),
    references=(
        dict(column='top-1 lin', value=76.7, pretraining=('contrastive', 300),
             protocol='MoCo v3 linear probe (main_lincls.py: class token, 90 ep)',
             source='github facebookresearch/moco-v3 README.md:55-59'),
        dict(column='top-1 ft', value=83.2, pretraining=('contrastive', 300),
             protocol='DeiT fine-tuning recipe, 150 ep (README.md:85)',
             source='github facebookresearch/moco-v3 README.md:78-82')))
