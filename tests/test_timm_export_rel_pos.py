"""tools/model_converters/to_timm.py with relative position tables. BEiT/CAE's bias tables
(``rel_pos_bias=True``, CAE's fine-tuning) are exported in timm's ``Beit`` layout, which a timm
``beit_*`` model with the printed options loads strictly and runs to the same features; backbones
that no timm model computes exactly are refused with one line that says why and what to do, and
so are ViTDet's decomposed tables unless --drop-rel-pos (LoMaR's: tests/test_model_converters.py).
"""
import re

import pytest
import timm
import torch

from lomar_transfer.cli import to_lomar_vit, to_timm
from lomar_transfer.models import VisionTransformer

ARCH = dict(arch=dict(embed_dims=32, depth=2, num_heads=2, mlp_hidden_dims=128), patch_size=8,
            img_size=64, rel_pos_bias=True)
STYLES = {
    # CAE fine-tuning (configs/cae/*finetune*): fixed sin-cos table in CAE's order, q/v biases,
    # LayerScale, mean of the patch tokens -> fc_norm
    'cae-finetune': dict(pos_embed='sincos', sincos_order='cae', qkv_bias='qv',
                         layer_scale_init_value=0.1, out_type='avg_featmap', final_norm=False),
    # mmseg MAE/BEiT-style transfer: learned table, one fused qkv bias, LayerScale, final norm
    'learned-fused-bias': dict(pos_embed='learned', qkv_bias=True, layer_scale_init_value=1.0,
                               out_type='raw'),
    # neither biases nor LayerScale
    'plain': dict(pos_embed='learned', qkv_bias=False, out_type='cls_token'),
}


def checkpoint(tmp_path, **opts):
    torch.manual_seed(0)
    vit = VisionTransformer(**{**ARCH, **opts})
    vit.init_weights()
    for name, p in vit.named_parameters():  # non-trivial weights; large, distinct tables
        p.data += (0.5 if 'relative_position_bias_table' in name else 0.02) * torch.randn_like(p)
    path = tmp_path / 'ours.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in vit.state_dict().items()},
                'meta': {}}, path)
    return vit.eval(), path


def export(src, dst, capsys, *args):
    to_timm.main([str(src), str(dst), *map(str, args)])
    log = capsys.readouterr().out
    options = eval('dict(' + re.search(r'^timm: Beit\((.*)\) \(timm\.models\.beit\.Beit\)$',
                                       log, re.M)[1] + ')')
    return log, options


@pytest.mark.parametrize('style', list(STYLES))
@torch.no_grad()
def test_relative_position_bias_exports_to_timm_beit(style, tmp_path, capsys):
    vit, src = checkpoint(tmp_path, **STYLES[style])
    log, options = export(src, tmp_path / 'beit.pth', capsys, '--img-size', 64)
    assert 'relative position bias tables: 2' in log and 'dropped 0 keys' in log
    assert options['use_rel_pos_bias'] is True and options['num_heads'] == 2
    sd = torch.load(tmp_path / 'beit.pth')
    assert torch.equal(sd['blocks.1.attn.relative_position_bias_table'],
                       vit.layers[1].attn.relative_position_bias_table)
    # a beit_base_patch16_224 with our sizes (the printed options override the registry's)
    model = timm.create_model('beit_base_patch16_224', pretrained=False, num_classes=0,
                              **options).eval()
    assert type(model) is timm.models.beit.Beit
    model.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 64, 64)
    ours = vit(x)[0]
    feats = model.forward_features(x)
    theirs = {'cae-finetune': lambda: model.forward_head(feats, pre_logits=True),
              'learned-fused-bias': lambda: feats,
              'plain': lambda: model.forward_head(feats, pre_logits=True)}[style]()
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)

    # and back: timm's Beit naming is the official CAE/BEiT one (timm's without LayerScale),
    # converted to the same tensors
    to_lomar_vit.main([str(tmp_path / 'beit.pth'), str(tmp_path / 'back.pth')])
    source = 'timm' if style == 'plain' else 'cae'
    assert f'source: {source};' in capsys.readouterr().out
    back = torch.load(tmp_path / 'back.pth')['state_dict']
    own = vit.state_dict()
    if style == 'learned-fused-bias':  # q/v biases now; the k part of the fused one was unused
        for i in range(2):
            qkv = own.pop(f'layers.{i}.attn.qkv.bias')
            assert torch.equal(back.pop(f'layers.{i}.attn.q_bias'), qkv[:32])
            assert torch.equal(back.pop(f'layers.{i}.attn.v_bias'), qkv[64:])
    if style == 'cae-finetune':  # the fixed table, now explicit
        back.pop('pos_embed')
    assert set(back) == set(own)
    assert all(torch.equal(back[k], own[k]) for k in own)


def refused(argv, dst, *messages):
    with pytest.raises(SystemExit) as e:
        to_timm.main(list(map(str, argv)))
    text = str(e.value.code)
    assert text.startswith('error: ') and '\n' not in text, text
    assert all(m in text for m in messages), text
    assert not dst.exists()


def test_tables_that_no_timm_model_holds_are_refused(tmp_path):
    _, src = checkpoint(tmp_path, **STYLES['cae-finetune'])
    dst = tmp_path / 'out.pth'
    # the tables are for the 8x8 grid of 64 px: the default --img-size 224 (28x28) does not fit
    refused([src, dst], dst, 'made for a 8x8 patch grid', 'not the 28x28 grid of img_size 224',
            'pass --img-size 64')
    _, src = checkpoint(tmp_path, pos_embed='learned', with_cls_token=False, out_type='raw')
    refused([src, dst, '--img-size', 64], dst, 'Beit', 'class token')
    _, src = checkpoint(tmp_path, pos_embed='learned', out_type='raw', final_norm=False)
    refused([src, dst, '--img-size', 64], dst, 'Beit', 'LayerNorm', 'final_norm=False')


def test_vitdet_decomposed_tables_are_not_silently_dropped(tmp_path, capsys):
    _, src = checkpoint(tmp_path, pos_embed='learned', with_cls_token=False, rel_pos_bias=False,
                        rel_pos='decomposed', out_type='raw')
    dst = tmp_path / 'out.pth'
    refused([src, dst, '--img-size', 64], dst, 'decomposed relative position tables (4',
            '--drop-rel-pos')
    to_timm.main([str(src), str(dst), '--img-size', '64', '--drop-rel-pos'])
    log = capsys.readouterr().out
    assert 'dropped 4 keys' in log and 'rel_pos_h' in log and 'timm: VisionTransformer(' in log
    assert not any('rel_pos' in k for k in torch.load(dst))
