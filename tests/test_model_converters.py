"""tools/model_converters: our backbone -> timm vit_* (exact features in timm, with or without
class token), timm -> ours (round trip), reports printed, LoMaR's relative tables refused by the
timm export, --source forced and refused when the checkpoint contradicts it."""
import re
import subprocess
import sys

import pytest
import timm
import torch

from conftest import REPO
from lomar_transfer.cli import to_lomar_vit, to_timm
from lomar_transfer.models import LoMaRViT, VisionTransformer

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
    vit = VisionTransformer(**{**ARCH, 'out_type': 'raw', **opts})
    vit.init_weights()
    for p in vit.parameters():  # non-trivial biases, q/v biases and layer scales
        p.data += 0.02 * torch.randn_like(p)
    path = tmp_path / 'ours.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in vit.state_dict().items()},
                'meta': {}}, path)
    return vit.eval(), path


@pytest.mark.parametrize('style', list(STYLES))
@pytest.mark.slow
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


@pytest.mark.slow
def test_lomar_relative_tables_are_not_silently_dropped(tmp_path):
    _, src = our_checkpoint(tmp_path, pos_embed=None, rel_pos=True)
    rc, log = tool('to_timm', src, tmp_path / 'timm.pth')
    assert rc != 0 and '--drop-rel-pos' in log and not (tmp_path / 'timm.pth').exists()
    rc, log = tool('to_timm', src, tmp_path / 'timm.pth', '--drop-rel-pos')
    assert rc == 0 and 'dropped 2 keys' in log and 'lookup_table_weight' in log


@pytest.mark.slow
def test_converter_refuses_non_vit_checkpoints(tmp_path):
    torch.save({'state_dict': {'conv1.weight': torch.zeros(8, 3, 7, 7)}}, tmp_path / 'r.pth')
    rc, log = tool('to_lomar_vit', tmp_path / 'r.pth', tmp_path / 'out.pth')
    assert rc != 0 and 'is this a ViT checkpoint' in log
    assert not (tmp_path / 'out.pth').exists()


def refused(main, argv, dst, *messages):
    """``main(argv)`` ends with one ``error: ...`` line (exit status 1) and writes no ``dst``."""
    with pytest.raises(SystemExit) as e:
        main(list(map(str, argv)))
    text = str(e.value.code)
    assert text.startswith('error: ') and '\n' not in text, text
    assert all(m in text for m in messages), text
    assert not dst.exists()


def test_source_override_and_its_refusal(tmp_path, capsys):
    # official CAE weights without layer scale (layer_scale_init_value=0): CAE's q/v biases in
    # timm's naming (modeling_finetune.py Block/Attention), which auto-detection calls 'timm'
    torch.manual_seed(0)
    vit = VisionTransformer(**ARCH, qkv_bias='qv', pos_embed='learned')
    cae = {k.replace('layers.', 'blocks.'): torch.randn(v.shape)
           for k, v in vit.state_dict().items()}
    torch.save({'model': cae}, tmp_path / 'cae.pth')
    to_lomar_vit.main([str(tmp_path / 'cae.pth'), str(tmp_path / 'auto.pth')])
    assert 'source: timm;' in capsys.readouterr().out
    to_lomar_vit.main([str(tmp_path / 'cae.pth'), str(tmp_path / 'out.pth'), '--source', 'cae'])
    assert 'source: cae;' in capsys.readouterr().out
    out = torch.load(tmp_path / 'out.pth')
    assert out['meta']['source'] == 'cae'
    assert sorted(out['state_dict']) == sorted(vit.state_dict())
    assert all(torch.equal(v, cae[k.replace('layers.', 'blocks.')])
               for k, v in out['state_dict'].items())

    # a timm file (one fused qkv.bias) is no CAE, LoMaR (no iRPE tables) or mmpretrain file
    torch.save(timm.models.vision_transformer.VisionTransformer(
        img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4,
        num_classes=0).state_dict(), tmp_path / 'timm.pth')
    for source, why in [('cae', "'blocks.0.attn.qkv.bias'"), ('lomar', 'lacks relative position'),
                        ('mmpretrain', "timm's naming")]:
        refused(to_lomar_vit.main, [tmp_path / 'timm.pth', tmp_path / 'no.pth', '--source', source],
                tmp_path / 'no.pth', f"source '{source}' does not fit this checkpoint", why)


def test_timm_export_refuses_a_non_vit(tmp_path):
    torch.save({'state_dict': {'conv1.weight': torch.zeros(8, 3, 7, 7)}}, tmp_path / 'r.pth')
    refused(to_timm.main, [tmp_path / 'r.pth', tmp_path / 'out.pth'], tmp_path / 'out.pth',
            'is this a ViT checkpoint')


@pytest.mark.parametrize('pool', ['tokens', 'fc_norm'])
@torch.no_grad()
def test_class_token_free_backbone_exports_exactly(pool, tmp_path, capsys):
    """Without class token timm needs class_token=False and a pooling other than 'token': 'avg'
    of the normed tokens (fc_norm=False), or 'avg' then fc_norm (MAE/LoMaR's fine-tune norm).
    The printed options build a timm model that holds the export exactly."""
    opts = dict(with_cls_token=False, pos_embed='learned')
    if pool == 'fc_norm':
        opts.update(pos_embed='sincos', out_type='avg_featmap', final_norm=False)
    vit, src = our_checkpoint(tmp_path, **opts)
    to_timm.main([str(src), str(tmp_path / 'timm.pth'), '--img-size', '64'])
    log = capsys.readouterr().out
    assert 'class token: False' in log
    options = eval('dict(' + re.search(r'timm: VisionTransformer\((.*), num_heads=', log)[1] + ')')
    assert options['class_token'] is False and options['global_pool'] == 'avg'
    assert options.get('fc_norm', True) is (pool == 'fc_norm')
    model = timm.models.vision_transformer.VisionTransformer(
        **options, num_heads=2, num_classes=0).eval()
    model.load_state_dict(torch.load(tmp_path / 'timm.pth'), strict=True)
    x = torch.randn(2, 3, 64, 64)
    pooled = model.forward_head(model.forward_features(x), pre_logits=True)
    if pool == 'tokens':
        torch.testing.assert_close(model.forward_features(x), vit(x)[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(pooled, vit(x)[0].mean(1), atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(pooled, vit(x)[0], atol=1e-5, rtol=0)


@torch.no_grad()
def test_class_token_free_lomar_exports_without_its_tables(tmp_path, capsys):
    """LoMaR without class token, --drop-rel-pos: no position information left, so timm gets
    pos_embed='none' (its mask token, a pretraining input, is dropped too)."""
    vit = LoMaRViT(**ARCH, window_patches=2, with_cls_token=False)
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in vit.state_dict().items()}},
               tmp_path / 'lomar.pth')
    to_timm.main([str(tmp_path / 'lomar.pth'), str(tmp_path / 'timm.pth'), '--img-size', '64',
                  '--drop-rel-pos'])
    log = capsys.readouterr().out
    assert 'dropped 3 keys' in log and 'mask_token' in log
    options = eval('dict(' + re.search(r'timm: VisionTransformer\((.*), num_heads=', log)[1] + ')')
    assert options['pos_embed'] == 'none' and options['class_token'] is False
    timm.models.vision_transformer.VisionTransformer(
        **options, num_heads=2, num_classes=0).load_state_dict(
            torch.load(tmp_path / 'timm.pth'), strict=True)
