"""Layer-wise lr decay through mmpretrain's constructor, from an mmseg model."""
import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from conftest import REPO


def test_layer_decay_values_per_block():
    cfg = Config.fromfile(REPO / 'configs/smoke/fcn_vit-tiny-p16_synthetic-ade20k.py')
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    base_lr, rate, depth = 1e-3, 0.65, 4
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.05),
        constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=rate)))
    lr = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    assert lr['backbone.patch_embed.proj.weight'] == pytest.approx(base_lr * rate**(depth + 1))
    assert lr['backbone.cls_token'] == pytest.approx(base_lr * rate**(depth + 1))
    for i in range(depth):
        assert lr[f'backbone.layers.{i}.attn.qkv.weight'] == pytest.approx(
            base_lr * rate**(depth - i))
    assert lr['backbone.norm.weight'] == pytest.approx(base_lr)
    assert lr['decode_head.conv_seg.weight'] == pytest.approx(base_lr)
    assert len(lr) == len([p for p in model.parameters() if p.requires_grad])
