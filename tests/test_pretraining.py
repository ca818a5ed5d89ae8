"""Synthetic pretraining of LoMaR, MAE and CAE through tools/train.py; the checkpoints load into
the transfer ViT with zero missing keys and compute the same features."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from lomar_transfer.models.backbones.converters import convert_to_lomar_vit
from lomar_transfer.models import VisionTransformer
from lomar_transfer.registry import MODELS

TINY_TRANSFER = dict(arch=dict(embed_dims=128, depth=4, num_heads=4, mlp_hidden_dims=512),
                     patch_size=8, img_size=112)
METHODS = {  # config, iterations, transfer ViT options, pretraining-only keys
    'lomar': ('configs/lomar/lomar_vit-tiny-p8_synthetic.py', 40,
              dict(pos_embed=None, rel_pos=True), ['backbone.mask_token', 'head.']),
    'mae': ('configs/mae/mae_vit-tiny-p8_synthetic.py', 12, dict(pos_embed='sincos'),
            ['neck.']),
    'cae': ('configs/cae/cae_vit-tiny-p8_synthetic.py', 12,
            dict(pos_embed='sincos', sincos_order='cae', qkv_bias='qv',
                 layer_scale_init_value=0.1),
            ['teacher.', 'neck.']),
}


def train_with_tool(config, work_dir, data_root, iters):
    """tools/train.py on the test's synthetic data; returns the logged losses (every iteration)."""
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir),
           '--cfg-options', f'train_dataloader.dataset.data_root={data_root}/imagenet',
           'train_dataloader.batch_size=16', f'train_cfg.max_iters={iters}',
           'param_scheduler=[]',  # constant lr: a short run still learns
           f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1']
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    scalars = next(Path(work_dir).glob('*/vis_data/scalars.json'))
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return np.array([r['loss'] for r in rows if 'loss' in r])


@pytest.mark.parametrize('method', list(METHODS))
@pytest.mark.slow
def test_synthetic_pretraining_trains_and_transfers(method, synthetic_root, tmp_path):
    config, iters, transfer_opts, extra_prefixes = METHODS[method]
    losses = train_with_tool(config, tmp_path, synthetic_root, iters)
    assert len(losses) == iters and np.isfinite(losses).all()
    assert losses[-3:].mean() < losses[:3].mean(), losses
    if method == 'lomar':  # the criterion: falls within a few dozen iterations
        assert losses[-5:].mean() < 0.8 * losses[:5].mean(), losses

    ckpt = torch.load(tmp_path / f'iter_{iters}.pth', weights_only=False)
    state_dict, dropped = convert_to_lomar_vit(ckpt)
    assert all(any(k.startswith(p) for p in extra_prefixes) for k in dropped), dropped
    state_dict.pop('mask_token', None)  # an input of LoMaR's pretraining view only
    transfer = VisionTransformer(**TINY_TRANSFER, **transfer_opts).eval()
    result = transfer.load_state_dict(state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # the transfer ViT computes what the pretraining encoder computes on a full image
    cfg = Config.fromfile(REPO / config)
    encoder = MODELS.build(cfg.model.backbone).eval()
    encoder.load_state_dict({k[len('backbone.'):]: v for k, v in ckpt['state_dict'].items()
                             if k.startswith('backbone.')})
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        tokens = encoder(x, mask=None)[0]  # (1, 1 + 196, 128)
        torch.testing.assert_close(transfer(x)[0],
                                   tokens[:, 1:].transpose(1, 2).reshape(1, 128, 14, 14),
                                   atol=1e-5, rtol=0)


def test_cae_dalle_config_fails_without_tokenizer_weights(tmp_path):
    cfg = Config.fromfile(REPO / 'configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e_in1k.py')
    cfg.model.target_generator.weights = str(tmp_path / 'dalle_encoder.pth')
    from mmpretrain.registry import MODELS
    with pytest.raises(FileNotFoundError, match='dalle_encoder.pth.*pixel-target'):
        MODELS.build(cfg.model)


def test_no_mask_is_none_in_every_pretraining_view():
    """mask=None is "no masking" in all three pretraining views (mmpretrain's value): each is
    then exactly the plain ViT with the same weights; any other value that is not a mask is
    refused instead of being taken for one (False used to mean "no mask" in two of them)."""
    from lomar_transfer.models import (CAEPretrainViT, LoMaRViT, MAEPretrainViT,
                                       VisionTransformer)
    tiny = dict(arch=dict(embed_dims=32, depth=2, num_heads=2, mlp_hidden_dims=64),
                img_size=32, patch_size=8)  # (the views output raw tokens)
    x = torch.randn(2, 3, 32, 32)
    views = {LoMaRViT: dict(rel_pos=True, pos_embed=None, window_patches=3),
             MAEPretrainViT: dict(pos_embed='sincos'),
             CAEPretrainViT: dict(pos_embed='sincos', sincos_order='cae', qkv_bias='qv',
                                  layer_scale_init_value=0.1)}
    for cls, kw in views.items():
        torch.manual_seed(0)
        view = cls(**tiny, **kw)
        plain = VisionTransformer(**tiny, out_type='raw', **kw if cls is not LoMaRViT else
                                  dict(rel_pos=True, pos_embed=None))
        missing, unexpected = plain.load_state_dict(view.state_dict(), strict=False)
        assert not missing and all('mask_token' in k for k in unexpected), (cls, unexpected)
        view.eval(), plain.eval()
        torch.testing.assert_close(view(x, mask=None)[0], plain(x)[0])
        for wrong in ((False, 0) if cls is not CAEPretrainViT else (True, False)):
            with pytest.raises(ValueError, match=f'mask={wrong!r}; pass'):
                view(x, mask=wrong)
