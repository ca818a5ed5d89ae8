"""Pretrained weights into the transfer ViT: converted, adapted, reported, or refused."""
import logging
import subprocess
import sys

import pytest
import torch

from conftest import REPO, format2_names, weights
from lomar_transfer.models.backbones.pretrained import load_pretrained_backbone
from lomar_transfer.models import CAEPretrainViT, VisionTransformer

TINY = dict(embed_dims=32, depth=2, num_heads=2, mlp_hidden_dims=64)


def save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def test_suite_checkpoint_into_dense_task_vit(tmp_path):
    """LoMaR pretraining weights (class token, 7x7 windows) into a windowed ViT without class
    token at another input size: everything but the class token loads and the report says so."""
    src = VisionTransformer(arch=TINY, img_size=56, patch_size=8, rel_pos=True, pos_embed=None)
    src.init_weights()
    for b in src.layers:
        torch.nn.init.normal_(b.attn.rpe_k.lookup_table_weight)
    sd = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    sd['head.predictor.weight'] = torch.zeros(3, 3)
    path = save(tmp_path, 'lomar.pth', {'state_dict': sd, 'meta': {}})
    dst = VisionTransformer(arch=TINY, img_size=64, patch_size=8, rel_pos=True, pos_embed=None,
                            with_cls_token=False, window_size=4, global_attn_indices=(1, ))
    records = []
    logger = logging.getLogger('test_pretrained_report')
    logger.addHandler(logging.Handler())
    logger.handlers[-1].emit = records.append
    logger.setLevel(logging.INFO)
    load_pretrained_backbone(dst, path, logger=logger)
    torch.testing.assert_close(dst.layers[1].attn.rpe_k.lookup_table_weight,
                               src.layers[1].attn.rpe_k.lookup_table_weight)
    torch.testing.assert_close(dst.layers[0].mlp.fc2.weight, src.layers[0].mlp.fc2.weight)
    report = '\n'.join(r.getMessage() for r in records)
    assert f'loaded {len(dst.state_dict())}/{len(dst.state_dict())}' in report
    assert 'cls_token (this model has no class token)' in report
    assert "dropped 1 non-backbone keys, e.g. ['head.predictor.weight']" in report


def test_vitdet_relative_position_tables_load_and_resize(tmp_path):
    """A ViTDet-style ViT (decomposed per-axis tables in every block, windows of 4 and one
    global block; every tensor random) into the same ViT: every tensor arrives, features equal.
    Into one built for 96x96 (12x12 grid: the global block's tables grow from 15 to 23 rows) the
    tables are resized linearly as detectron2 does when it meets them (utils.py:75-86), so the
    loaded model computes at 96 what the source computes there."""
    kw = dict(arch=TINY, patch_size=8, pos_embed=None, with_cls_token=False, out_type='raw',
              rel_pos='decomposed', window_size=4, global_attn_indices=(1, ))
    src = VisionTransformer(img_size=64, **kw)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in src.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * .3)
    path = save(tmp_path, 'vitdet.pth', {'state_dict': {f'backbone.{k}': v for k, v in
                                                        src.state_dict().items()}, 'meta': {}})
    same = VisionTransformer(img_size=64, init_cfg=weights(path), **kw)
    same.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(same.state_dict()[k], v), k
    x = torch.randn(2, 3, 96, 96, generator=gen)
    bigger = VisionTransformer(img_size=96, init_cfg=weights(path), **kw)
    bigger.init_weights()
    assert bigger.layers[1].attn.rel_pos_h.shape[0] == 23
    assert torch.equal(bigger.layers[0].attn.rel_pos_h, src.layers[0].attn.rel_pos_h)  # windows
    src.eval(), bigger.eval()
    with torch.no_grad():
        torch.testing.assert_close(bigger(x)[0], src(x)[0], atol=1e-5, rtol=1e-5)


def test_timm_style_checkpoint_pos_embed_resampled(tmp_path):
    """A timm ViT checkpoint made at 32x32 (4x4 grid) into our ViT built for 48x48 (6x6): the
    learned table is resampled bicubically (align_corners=False) with its class-token slot kept
    apart, and the model then computes what timm's own ViT computes from the same checkpoint."""
    import timm.models.vision_transformer as timm_vit
    from timm.layers import resample_abs_pos_embed as timm_resample
    timm_kw = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.,
                   num_classes=10)
    src = timm_vit.VisionTransformer(img_size=32, **timm_kw)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # every tensor random and non-zero: tokens, biases, norms, the table
        for p in src.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + 0.05)
    ckpt = {k: v.clone() for k, v in src.state_dict().items()}
    path = save(tmp_path, 'vit.pth', {'model': ckpt})
    dst = VisionTransformer(arch=TINY, img_size=48, patch_size=8, pos_embed='learned',
                            out_type='raw', init_cfg=dict(type='Pretrained', checkpoint=path))
    dst.init_weights()

    # an independent reference: the (1, C, 4, 4) grid interpolated to 6x6, class slot as it was
    old = ckpt['pos_embed']
    grid = old[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, size=(6, 6), mode='bicubic',
                                           align_corners=False)
    want = torch.cat([old[:, :1], grid.permute(0, 2, 3, 1).reshape(1, 36, 32)], dim=1)
    torch.testing.assert_close(dst.pos_embed.detach(), want, rtol=0, atol=1e-6)
    # timm's resampler does the same with antialias=False; its default antialias=True (timm >=
    # 0.9) differs by ~10% on upsampling. Ours follows MAE's interpolate_pos_embed and mmseg /
    # mmpretrain resize_pos_embed (plain bicubic).
    torch.testing.assert_close(
        dst.pos_embed.detach(), timm_resample(old, (6, 6), (4, 4), 1, antialias=False),
        rtol=0, atol=1e-6)
    torch.testing.assert_close(dst.cls_token.detach(), ckpt['cls_token'], rtol=0, atol=0)

    # features at the second resolution: timm's ViT at 48x48 loading the same checkpoint
    # through its own filter (which resamples the table) vs ours
    ref = timm_vit.VisionTransformer(img_size=48, **timm_kw).eval()
    ref.load_state_dict(timm_vit.checkpoint_filter_fn(
        {'model': {k: v.clone() for k, v in ckpt.items()}}, ref, antialias=False))
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        ours, theirs = dst.eval()(x)[0], ref.forward_features(x)
    assert theirs.shape == (2, 37, 32) and theirs.abs().mean() > 0.1
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_refuses_a_checkpoint_that_does_not_match(tmp_path):
    path = save(tmp_path, 'resnet.pth', {'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7),
                                                        'blocks.0.conv.weight': torch.zeros(1)}})
    vit = VisionTransformer(arch=TINY, img_size=32, patch_size=8, init_cfg=weights(path))
    with pytest.raises(RuntimeError, match='refusing to load'):
        vit.init_weights()


def test_wrong_architecture_and_broken_files_are_named(tmp_path):
    small = VisionTransformer(arch=dict(TINY, embed_dims=64, num_heads=4), img_size=32,
                              patch_size=8)
    path = save(tmp_path, 'wider.pth', small.state_dict())
    with pytest.raises(RuntimeError, match='another architecture'):
        VisionTransformer(arch=TINY, img_size=32, patch_size=8,
                          init_cfg=weights(path)).init_weights()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(path, 'rb').read()[:1000])
    with pytest.raises(RuntimeError, match='truncated'):
        VisionTransformer(arch=TINY, img_size=32, patch_size=8,
                          init_cfg=weights(truncated)).init_weights()
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        VisionTransformer(arch=TINY, init_cfg=weights(tmp_path / 'nope.pth')).init_weights()


def test_cae_position_buffer_survives_init():
    vit = CAEPretrainViT(arch=TINY, img_size=32, patch_size=8)
    vit.init_weights()
    torch.testing.assert_close(vit.pos_embed, vit.abs_pos_embed((4, 4)))
    assert 'pos_embed' not in vit.state_dict()


def report_of(load):
    """The lines ``load(logger)`` logs."""
    records = []
    logger = logging.getLogger(f'test_pretrained_report_{id(records)}')
    logger.addHandler(logging.Handler())
    logger.handlers[-1].emit = records.append
    logger.setLevel(logging.INFO)
    load(logger)
    return '\n'.join(r.getMessage() for r in records)


@pytest.mark.slow
def test_checkpoint_of_format_2_is_migrated(tmp_path):
    """A pretraining checkpoint written before format 3 (format version 2, the block list named
    ``blocks``) loads into today's backbone (``layers``) with identical outputs: through
    ``init_cfg=Pretrained`` (the report names the migration), through the converter tool's
    output, and as a whole model through mmengine's loader (``load_from`` / ``--resume``)."""
    from mmengine.runner.checkpoint import load_checkpoint
    cfg = dict(arch=TINY, img_size=32, patch_size=8, rel_pos=True, pos_embed=None,
               out_type='raw')
    torch.manual_seed(0)
    src = VisionTransformer(**cfg)
    src.init_weights()
    for p in src.parameters():  # every tensor matters: relative tables, biases, norms
        p.data += 0.1 * torch.randn_like(p)
    model = torch.nn.Module()
    model.backbone = src
    sd = model.state_dict()
    sd._metadata['backbone']['version'] = 2
    old = format2_names(sd)
    blocks = [k for k in old if k.startswith('backbone.blocks.')]
    assert len(blocks) == 2 * 13 and not any('layers' in k for k in old)
    old['head.predictor.weight'] = torch.zeros(3, 3)
    path = save(tmp_path, 'pretrain_v2.pth', {'state_dict': old, 'meta': {}})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = src.eval()(x)[0]

        dst = VisionTransformer(**cfg)
        report = report_of(lambda logger: load_pretrained_backbone(dst, path, logger=logger))
        assert f'loaded {len(dst.state_dict())}/{len(dst.state_dict())} backbone' in report
        assert ("migrated: lomar_transfer checkpoint format 2: 26 block tensors renamed "
                "'blocks.N.*' -> 'layers.N.*'") in report, report
        assert torch.equal(dst.eval()(x)[0], want)

        out = subprocess.run([sys.executable, str(REPO / 'tools/model_converters/to_lomar_vit.py'),
                              path, str(tmp_path / 'v2_converted.pth')], capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr
        assert "migrated: lomar_transfer checkpoint format 2: 26 block tensors" in out.stdout
        converted = torch.load(tmp_path / 'v2_converted.pth')['state_dict']
        assert 'layers.1.attn.rpe_k.lookup_table_weight' in converted
        dst = VisionTransformer(**cfg, init_cfg=weights(tmp_path / 'v2_converted.pth'))
        dst.init_weights()
        assert torch.equal(dst.eval()(x)[0], want)

        whole = torch.nn.Module()
        whole.backbone = VisionTransformer(**cfg)
        load_checkpoint(whole, path, strict=False)  # as Runner.load_checkpoint (load_from)
        assert torch.equal(whole.backbone.eval()(x)[0], want)
        whole.backbone = VisionTransformer(**cfg)  # strict: no block tensor left behind
        load_checkpoint(whole, save(tmp_path, 'whole_v2.pth', {'state_dict': format2_names(sd)}),
                        strict=True)
        assert torch.equal(whole.backbone.eval()(x)[0], want)

        # format 1 (LoMaR's tables of scaled queries) through mmengine's loader: rescaled as
        # through ours, although its tables' version is recorded under their old names
        for key in sd._metadata:
            if key == 'backbone' or key.endswith('rpe_k'):
                sd._metadata[key]['version'] = 1
        path = save(tmp_path, 'pretrain_v1.pth', {'state_dict': format2_names(sd)})
        ref = VisionTransformer(**cfg, init_cfg=weights(path))
        ref.init_weights()
        whole.backbone = VisionTransformer(**cfg)
        load_checkpoint(whole, path, strict=True)
        torch.testing.assert_close(whole.backbone.layers[1].attn.rpe_k.lookup_table_weight,
                                   src.layers[1].attn.rpe_k.lookup_table_weight * 16**-0.5)
        assert torch.equal(whole.backbone.eval()(x)[0], ref.eval()(x)[0])

    # what this version writes (format 3) loads as it is, without a migration
    model.backbone = dst
    path = save(tmp_path, 'pretrain_v3.pth', {'state_dict': model.state_dict()})
    report = report_of(
        lambda logger: load_pretrained_backbone(VisionTransformer(**cfg), path, logger=logger))
    assert 'migrated' not in report and 'loaded 31/31' in report


def test_pretrained_may_name_a_training_work_dir(tmp_path):
    """init_cfg=Pretrained with a WORK_DIR loads the checkpoint its last_checkpoint names (also
    when the folder was moved since); a folder without one, or naming a missing file, is one
    clear error."""
    src = VisionTransformer(arch=TINY, img_size=32, patch_size=8)
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    run = tmp_path / 'run'
    run.mkdir()
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in src.state_dict().items()},
                'meta': {}}, run / 'iter_20.pth')
    torch.save({'state_dict': {}}, run / 'iter_10.pth')  # an older one: not the one loaded
    (run / 'last_checkpoint').write_text('/elsewhere/when/trained/run/iter_20.pth')
    dst = VisionTransformer(arch=TINY, img_size=32, patch_size=8, init_cfg=weights(run))
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    (run / 'last_checkpoint').write_text(str(run / 'iter_30.pth'))
    with pytest.raises(FileNotFoundError, match=r'its last_checkpoint names .*iter_30.pth, '
                       'which does not exist'):
        VisionTransformer(arch=TINY, img_size=32, patch_size=8,
                          init_cfg=weights(run)).init_weights()
    (run / 'last_checkpoint').unlink()
    with pytest.raises(FileNotFoundError, match='is a directory without last_checkpoint'):
        VisionTransformer(arch=TINY, img_size=32, patch_size=8,
                          init_cfg=weights(run)).init_weights()


def test_init_cfg_is_the_one_way_to_give_pretrained_weights(tmp_path):
    """OpenMMLab's init_cfg=dict(type='Pretrained', checkpoint=...) runs our loader (keys
    converted, mismatches refused), not mmengine's; mmseg's deprecated ``pretrained=`` (its
    segmentors hand a config's model.pretrained to the backbone) is taken as the same with a
    deprecation warning, as mmseg's own backbones do; both at once, or keys our loader does not
    know, are refused."""
    src = VisionTransformer(arch=TINY, img_size=32, patch_size=8)
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    path = tmp_path / 'vit.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in src.state_dict().items()}}, path)
    via_init_cfg = VisionTransformer(arch=TINY, img_size=32, patch_size=8, init_cfg=weights(path))
    assert via_init_cfg.init_cfg is None  # ours loads it; BaseModule's PretrainedInit must not
    via_init_cfg.init_weights()
    with pytest.warns(UserWarning, match=r"pretrained is deprecated, please use "
                      r"init_cfg=dict\(type='Pretrained', checkpoint="):
        via_mmseg = VisionTransformer(arch=TINY, img_size=32, patch_size=8, pretrained=str(path))
    via_mmseg.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(via_init_cfg.state_dict()[k], v), k
        assert torch.equal(via_mmseg.state_dict()[k], v), k
    with pytest.raises(ValueError, match='both pretrained= and init_cfg= set'):
        VisionTransformer(arch=TINY, pretrained=str(path), init_cfg=weights(path))
    with pytest.raises(ValueError, match=r"unknown keys \['strict'\]"):
        VisionTransformer(arch=TINY, init_cfg=dict(weights(path), strict=False))


def test_a_checkpoint_option_gives_weights_to_a_backbone_without_them(tmp_path):
    """``--cfg-options model.backbone.init_cfg.checkpoint=PATH`` on a config whose backbone has
    no weights (init_cfg=None) makes it init_cfg=Pretrained with that checkpoint; on one with
    weights it replaces the checkpoint only."""
    from lomar_transfer.utils import load_config
    config = tmp_path / 'c.py'
    config.write_text("model = dict(backbone=dict(type='lomar_transfer.VisionTransformer', "
                      "init_cfg=None))\n")
    key = 'model.backbone.init_cfg.checkpoint'
    cfg = load_config(str(config), {key: 'a.pth'})
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='a.pth')
    config.write_text("model = dict(backbone=dict(type='lomar_transfer.VisionTransformer', "
                      "init_cfg=dict(type='Pretrained', checkpoint='b.pth', source='mae')))\n")
    cfg = load_config(str(config), {key: 'a.pth'})
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='a.pth', source='mae')
