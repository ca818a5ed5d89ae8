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
EXPECTED = {  # what the method leaves must set on the shared ViT
    'lomar': dict(pos_embed_type=None, rel_pos=True, layer_scale=False),
    'mae': dict(pos_embed_type='sincos', rel_pos=False, layer_scale=False),
    'cae': dict(pos_embed_type='sincos', rel_pos=False, layer_scale=True),
}


def build(cfg):
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model)


def test_every_method_has_the_four_paper_transfer_configs():
    names = {Path(p).name for p in PAPER}
    assert len(PAPER) == 12 and names == {
        'mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py',
        'upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py',
        'vit-base-p16_8xb128-coslr-100e_in1k.py',
        'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'}


@pytest.mark.parametrize('path', PAPER)
def test_paper_config_builds_our_vit_base(path):
    method = Path(path).parent.name
    cfg = Config.fromfile(REPO / path)
    assert 'lomar_transfer' in cfg.custom_imports['imports']
    model = build(cfg)
    vit = model.backbone
    assert isinstance(vit, VisionTransformer)
    assert (vit.embed_dims, vit.depth, vit.patch_size) == (768, 12, 16)
    want = EXPECTED[method]
    assert vit.pos_embed_type == want['pos_embed_type']
    assert (vit.blocks[0].attn.rpe_k is not None) == want['rel_pos']
    assert isinstance(vit.blocks[0].ls1, torch.nn.Identity) != want['layer_scale']
    assert vit.pretrained.startswith(f'work_dirs/{method}_vit-base-p16')
    if 'linear' in path:
        assert not any(p.requires_grad for p in vit.parameters())
    else:
        assert cfg.optim_wrapper.constructor == 'lomar_transfer.LayerDecayOptimWrapperConstructor'


@pytest.mark.parametrize('path, size', [
    ('configs/lomar/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py', 1024),
    ('configs/mae/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py', 512),
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
