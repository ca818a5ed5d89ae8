"""The paper-sized ViT-B/16 transfer configs and the stock-config plug-in example build the
intended models; the dense backbones run at the COCO (1024) and ADE20K (512) input sizes."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import MODELS, DefaultScope

from conftest import REPO
from lomar_transfer.models import VisionTransformer

PAPER = sorted(str(p.relative_to(REPO)) for m in ('lomar', 'mae', 'cae')
               for p in (REPO / 'configs' / m).glob('*vit-base-p16*')
               if not p.name.startswith(m))  # transfer configs, not pretraining
def build(cfg):
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model)


KINDS = {  # file name -> protocol
    'mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py': 'vitdet',
    'upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py': 'mmseg',
    'mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py': 'cae-det',
    'upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py': 'cae-seg',
    'vit-base-p16_8xb128-coslr-100e_in1k.py': 'finetune',
    'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py': 'linear',
}
DENSE = ('vitdet', 'mmseg', 'cae-det', 'cae-seg')


def expected(method, kind):
    """What each protocol makes of each method's ViT: (absolute table, relative position,
    LayerScale, class token in the sequence)."""
    if method == 'lomar':  # its own relative position everywhere, no absolute table
        rel = 'contextual'
        pos = None
    else:
        rel = {'vitdet': 'decomposed', 'mmseg': 'beit', 'cae-seg': 'beit',
               'finetune': 'beit' if method == 'cae' else None}.get(kind)
        pos = 'learned' if kind in DENSE else 'sincos'
    layer_scale = method == 'cae' or kind in ('mmseg', 'cae-det', 'cae-seg')
    return pos, rel, layer_scale, kind != 'vitdet'


def relative_position(attn):
    if attn.rpe_k is not None:
        return 'contextual'
    if attn.decomposed_grid is not None:
        return 'decomposed'
    return 'beit' if attn.rel_pos_bias_grid is not None else None


def test_every_method_has_the_paper_transfer_configs():
    for m in ('lomar', 'mae', 'cae'):
        assert {Path(p).name for p in PAPER if Path(p).parent.name == m} == set(KINDS)


@pytest.mark.parametrize('path', PAPER)
def test_paper_config_builds_our_vit_base(path):
    method = Path(path).parent.name
    cfg = Config.fromfile(REPO / path)
    assert 'lomar_transfer' in cfg.custom_imports['imports']
    model = build(cfg)
    vit = model.backbone
    assert isinstance(vit, VisionTransformer)
    assert (vit.embed_dims, vit.depth, vit.patch_size) == (768, 12, 16)
    pos, rel, layer_scale, cls = expected(method, KINDS[Path(path).name])
    assert vit.pos_embed_type == pos
    assert relative_position(vit.layers[0].attn) == rel
    assert isinstance(vit.layers[0].ls1, torch.nn.Identity) != layer_scale
    assert (vit.num_prefix_tokens == 1) == cls
    assert vit.pretrained.startswith(f'work_dirs/{method}_vit-base-p16')
    if 'linear' in path:
        assert not any(p.requires_grad for p in vit.parameters())
    else:
        assert cfg.optim_wrapper.constructor == 'lomar_transfer.LayerDecayOptimWrapperConstructor'


@pytest.mark.parametrize('path, size', [
    ('configs/lomar/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py', 1024),
    ('configs/lomar/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py', 512),
])
def test_dense_vit_base_runs_at_task_resolution(path, size):
    vit = build(Config.fromfile(REPO / path)).backbone.eval()
    with torch.no_grad():
        outs = vit(torch.randn(1, 3, size, size))
    assert all(o.shape == (1, 768, size // 16, size // 16) for o in outs)
    assert all(torch.isfinite(o).all() for o in outs)


def test_stock_mmdet_config_takes_our_backbone():
    cfg = Config.fromfile(REPO / 'configs/examples/mask-rcnn_vit-base-p16_fpn_1x_coco.py')
    stock = get_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    # only the backbone and the FPN's input channels differ from mmdet's own config
    assert cfg.model.neck.in_channels == [768] * 4
    ours = ('backbone', 'neck', '_scope_')  # _scope_: added when inheriting across packages
    assert {k: v for k, v in cfg.model.items() if k not in ours} == {
        k: v for k, v in stock.model.items() if k not in ours}
    assert {k: v for k, v in cfg.model.neck.items() if k != 'in_channels'} == {
        k: v for k, v in stock.model.neck.items() if k != 'in_channels'}
    model = build(cfg).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 224, 320))
    # FPN levels at strides 4, 8, 16, 32, 64: what the stock RPN anchors and RoI extractors use
    assert [tuple(f.shape[2:]) for f in feats] == [(56, 80), (28, 40), (14, 20), (7, 10), (4, 5)]
