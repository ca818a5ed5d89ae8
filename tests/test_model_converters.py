"""tools/model_converters: our backbone -> timm vit_* (exact features in timm), timm -> ours
(round trip), reports printed, LoMaR's relative tables refused by the timm export."""
import subprocess
import sys

import pytest
import timm
import torch

from conftest import REPO
from lomar_transfer.models import VisionTransformer

ARCH = dict(arch=dict(embed_dims=32, depth=2, num_heads=2, mlp_hidden_dims=128), patch_size=8,
            img_size=64)
STYLES = {  # our backbone options -> timm VisionTransformer options
    'mae': (dict(pos_embed='sincos'), dict()),
    'cae': (dict(pos_embed='sincos', sincos_order='cae', qkv_bias='qv',
                 layer_scale_init_value=0.1),
            dict(init_values=0.1)),
    'timm': (dict(pos_embed='learned'), dict()),
}


def tool(name, *args):
    out = subprocess.run([sys.executable, f'tools/model_converters/{name}.py', *map(str, args)],
                         cwd=REPO, capture_output=True, text=True)
    return out.returncode, out.stdout + out.stderr


def our_checkpoint(tmp_path, **opts):
    torch.manual_seed(0)
    vit = VisionTransformer(**ARCH, out_type='raw', **opts)
    vit.init_weights()
    for p in vit.parameters():  # non-trivial biases, q/v biases and layer scales
        p.data += 0.02 * torch.randn_like(p)
    path = tmp_path / 'ours.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in vit.state_dict().items()},
                'meta': {}}, path)
    return vit.eval(), path


@pytest.mark.parametrize('style', list(STYLES))
def test_export_to_timm_gives_the_same_features(style, tmp_path):
    ours_opts, timm_opts = STYLES[style]
    vit, src = our_checkpoint(tmp_path, **ours_opts)
    rc, log = tool('to_timm', src, tmp_path / 'timm.pth', '--img-size', 64)
    assert rc == 0, log
    assert 'exported' in log and 'class token: True' in log
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4,
        num_classes=0, **timm_opts).eval()
    model.load_state_dict(torch.load(tmp_path / 'timm.pth'), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = (model.forward_features(x) - vit(x)[0]).abs().max().item()
    assert diff < 1e-5, diff

    # back to ours: the same tensors (plus the now-explicit position embedding)
    rc, log = tool('to_lomar_vit', tmp_path / 'timm.pth', tmp_path / 'back.pth')
    assert rc == 0, log
    assert 'source: timm' in log
    back = torch.load(tmp_path / 'back.pth')['state_dict']
    if style == 'cae':  # q/v biases came back as one qkv bias with a zero k part
        assert torch.equal(back['layers.0.attn.qkv.bias'][32:64], torch.zeros(32))
    else:
        theirs = vit.state_dict()
        assert set(back) == set(theirs) | {'pos_embed'}
        assert all(torch.equal(back[k], theirs[k]) for k in theirs)


def test_lomar_relative_tables_are_not_silently_dropped(tmp_path):
    _, src = our_checkpoint(tmp_path, pos_embed=None, rel_pos=True)
    rc, log = tool('to_timm', src, tmp_path / 'timm.pth')
    assert rc != 0 and '--drop-rel-pos' in log and not (tmp_path / 'timm.pth').exists()
    rc, log = tool('to_timm', src, tmp_path / 'timm.pth', '--drop-rel-pos')
    assert rc == 0 and 'dropped 2 keys' in log and 'lookup_table_weight' in log


def test_converter_refuses_non_vit_checkpoints(tmp_path):
    torch.save({'state_dict': {'conv1.weight': torch.zeros(8, 3, 7, 7)}}, tmp_path / 'r.pth')
    rc, log = tool('to_lomar_vit', tmp_path / 'r.pth', tmp_path / 'out.pth')
    assert rc != 0 and 'is this a ViT checkpoint' in log
    assert not (tmp_path / 'out.pth').exists()
