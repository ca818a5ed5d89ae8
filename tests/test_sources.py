"""Every declared weight source (``lomar_transfer/sources``): a re-created official model with
every parameter non-zero, written in its release's file layout, gives the official features
through ``init_cfg=Pretrained``, ``pretrained=`` and ``lomar-convert``, with our ViT built from
the source's own preset; and the bad inputs of each are refused or reported."""
import logging
import re
import warnings
from collections import OrderedDict

import pytest
import torch

from conftest import weights
from lomar_transfer.cli.to_lomar_vit import main as convert_main
from lomar_transfer.fileio import CheckpointError
from lomar_transfer.models import VisionTransformer
from lomar_transfer.models.backbones.converters import detect_source
from lomar_transfer.sources import SOURCES
from official_models import perturb_
from official_sources import (BEiTEncoder, DINOViT, DIM, DEPTH, HEADS, IMG, PATCH, mocov3_vit,
                              timm_vit)

ARCH = dict(embed_dims=DIM, depth=DEPTH, num_heads=HEADS, mlp_hidden_dims=4 * DIM)
ATOL = 1e-5


def prefixed(prefix, module_or_sd):
    sd = module_or_sd if isinstance(module_or_sd, dict) else module_or_sd.state_dict()
    return OrderedDict((prefix + k, v) for k, v in sd.items())


def nonzero(model):
    perturb_(model)
    assert all(p.abs().min() > 0 for p in model.parameters() if p.requires_grad)
    return model.eval()


def deit(**kw):
    model = nonzero(timm_vit(**kw))
    return model, {'model': model.state_dict()}


def timm_in1k():
    model = nonzero(timm_vit())
    return model, model.state_dict()


def timm_in21k():  # the older in21k file's representation layer before the head
    model = nonzero(timm_vit(num_classes=21843))
    sd = model.state_dict()
    sd.update({'pre_logits.fc.weight': torch.randn(DIM, DIM),
               'pre_logits.fc.bias': torch.ones(DIM)})
    return model, sd


def mocov3(**kw):
    """vit-b-300ep.pth.tar (main_moco.py:310-316): the DDP-wrapped MoCo model."""
    base, momentum = nonzero(mocov3_vit(**kw)), perturb_(mocov3_vit(**kw), seed=1)
    sd = prefixed('module.base_encoder.', base)
    sd.update(prefixed('module.momentum_encoder.', momentum))
    sd.update({'module.predictor.0.weight': torch.randn(2 * DIM, DIM // 2),
               'module.predictor.3.weight': torch.randn(DIM // 2, 2 * DIM)})
    return base, {'epoch': 300, 'arch': 'vit_base', 'state_dict': sd, 'optimizer': {}}


def mocov3_linear():
    """linear-vit-b-300ep.pth.tar (main_lincls.py:319-325): the DDP-wrapped classifier."""
    model = nonzero(mocov3_vit(projector=False))
    return model, {'epoch': 90, 'arch': 'vit_base', 'state_dict': prefixed('module.', model),
                   'best_acc1': 76.7, 'optimizer': {}}


def dino_backbone():  # dino_vitbase16_pretrain.pth: bare (hubconf.py:57-63)
    model = nonzero(DINOViT())
    return model, model.state_dict()


def _heads(prefix):
    return {f'{prefix}head.mlp.0.weight': torch.randn(32, DIM),
            f'{prefix}head.last_layer.weight_g': torch.ones(16, 1),
            f'{prefix}head.last_layer.weight_v': torch.randn(16, 32)}


def dino_full(**kw):
    """dino_vitbase16_pretrain_full_checkpoint.pth (main_dino.py:278-287): the teacher is the
    one DINO evaluates (utils.py:71-82, checkpoint_key 'teacher')."""
    teacher, student = nonzero(DINOViT(**kw)), perturb_(DINOViT(**kw), seed=1)
    return teacher, {'student': {**prefixed('module.backbone.', student), **_heads('module.')},
                     'teacher': {**prefixed('backbone.', teacher), **_heads('')},
                     'optimizer': {}, 'epoch': 100, 'args': None,
                     'dino_loss': {'center': torch.zeros(1, 16)}}


def ibot_teacher():  # checkpoint_teacher.pth (extract_backbone_weights.py:27-41)
    model = nonzero(DINOViT())
    return model, {'state_dict': model.state_dict()}


def ibot_full(**kw):  # main_ibot.py:348-358; the student has masked_embed
    teacher, student = nonzero(DINOViT(**kw)), perturb_(DINOViT(masked_embed=True, **kw), seed=1)
    return teacher, {'student': {**prefixed('module.backbone.', student), **_heads('module.')},
                     'teacher': {**prefixed('backbone.', teacher), **_heads('')},
                     'optimizer': {}, 'epoch': 100, 'args': None,
                     'ibot_loss': {'center': torch.zeros(1, 16)}}


def beit(**kw):  # beit_base_patch16_224_pt22k.pth: {'model': ...}
    model = nonzero(BEiTEncoder(**kw))
    return model, {'model': model.state_dict()}


# release -> (file, source whose preset builds our ViT, what auto-detection says)
RELEASES = {
    'deit': (deit, 'supervised', 'timm'),
    'timm_in1k': (timm_in1k, 'supervised', 'timm'),
    'timm_in21k': (timm_in21k, 'supervised21k', 'timm'),
    'mocov3': (mocov3, 'mocov3', 'mocov3'),
    'mocov3_linear': (mocov3_linear, 'mocov3', 'mocov3'),
    'dino_backbone': (dino_backbone, 'dino', 'timm'),
    'dino_full': (dino_full, 'dino', 'dino'),
    'ibot_teacher': (ibot_teacher, 'ibot', 'timm'),
    'ibot_full': (ibot_full, 'ibot', 'ibot'),
    'beit': (beit, 'beit', 'beit'),
}


def ours(source, **kw):
    model = VisionTransformer(arch=ARCH, patch_size=PATCH, img_size=IMG, out_type='raw',
                              **SOURCES[source].encoder, **kw)
    model.init_weights()
    return model.eval()


def three_loaders(tmp_path, path, source):
    """Our ViT loaded by init_cfg=Pretrained, by pretrained= (mmseg's spelling), and from the
    file lomar-convert wrote."""
    dst = tmp_path / 'converted.pth'
    convert_main([str(path), str(dst)])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        by_pretrained = ours(source, pretrained=str(path))
    return [ours(source, init_cfg=weights(path)), by_pretrained,
            ours(source, init_cfg=weights(dst))]


@pytest.mark.parametrize('release', list(RELEASES))
def test_each_release_gives_the_official_features(tmp_path, release):
    make, source, detected = RELEASES[release]
    official, ckpt = make()
    path = tmp_path / f'{release}.pth'
    torch.save(ckpt, path)
    assert detect_source(ckpt) == detected
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        expected = official.forward_features(x)
        for model in three_loaders(tmp_path, path, source):
            torch.testing.assert_close(model(x)[0], expected, atol=ATOL, rtol=0)


def test_the_presets_of_the_configs_are_the_declarations():
    """configs/_base_/encoders/<m>.py, which the method configs inherit, say what the
    declaration says."""
    from mmengine.config import Config
    from conftest import REPO
    for name in ('lomar', 'mae', 'cae', 'mocov3'):
        preset = Config.fromfile(REPO / f'configs/_base_/encoders/{name}.py')[f'{name}_encoder']
        assert dict(preset) == SOURCES[name].encoder, name


def loaded_with_report(tmp_path, release, source):
    """Our ViT of ``source`` loading ``release``'s file, and the loader's report."""
    from lomar_transfer.models.backbones.pretrained import load_pretrained_backbone
    official, ckpt = RELEASES[release][0]()
    torch.save(ckpt, tmp_path / 'release.pth')
    model, records = ours(source), []
    logger = logging.getLogger('test_sources')
    logger.setLevel(logging.INFO)
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        load_pretrained_backbone(model, tmp_path / 'release.pth', logger=logger)
    finally:
        logger.removeHandler(handler)
    return official, model, '\n'.join(r.getMessage() for r in records)


def test_dino_full_checkpoint_takes_the_teacher_and_says_so(tmp_path):
    teacher, model, report = loaded_with_report(tmp_path, 'dino_full', 'dino')
    assert "student (the file's 'teacher' weights are taken" in report
    torch.testing.assert_close(model.cls_token, teacher.cls_token, atol=0, rtol=0)


def test_mocov3_linear_probe_file_loads_its_encoder_and_lists_the_classifier(tmp_path):
    _, model, report = loaded_with_report(tmp_path, 'mocov3_linear', 'mocov3')
    total = len(model.state_dict())
    assert f'loaded {total}/{total}' in report
    assert "dropped 2 non-backbone keys, e.g. ['module.head.weight', 'module.head.bias']" in report


def test_a_wider_file_is_refused_with_the_shapes(tmp_path):
    """A ViT-L file given to a ViT-B model, in miniature: 96 wide into 64."""
    model = timm_vit(dim=96)
    torch.save({'model': model.state_dict()}, tmp_path / 'large.pth')
    with pytest.raises(CheckpointError, match=r'another architecture.*shape mismatches.*'
                       r'cls_token: checkpoint \[1, 1, 96\] vs model \[1, 1, 64\]'):
        ours('supervised', init_cfg=weights(tmp_path / 'large.pth'))


def test_an_unknown_layout_names_the_formats_and_the_closest(tmp_path):
    with pytest.raises(ValueError, match="Known: .*beit.*dino.*ibot.*mocov3.*supervised.*; the "
                       'closest by key overlap is none'):
        detect_source({'encoder.layer.0.attention.query.weight': torch.zeros(1)})
    # a DINO student taken out of its file: no mark of any release, but DINO's prefix
    student = prefixed('module.backbone.', DINOViT())
    with pytest.raises(ValueError, match=f"closest by key overlap is 'dino' \\({len(student)} "
                       "tensors would load\\): pass source='dino'"):
        detect_source(student)


def test_a_forced_source_the_file_contradicts_is_refused():
    _, ckpt = beit()
    with pytest.raises(ValueError, match="source 'dino' does not fit this checkpoint: its keys "
                       "are in 'beit' naming"):
        from lomar_transfer.models.backbones.converters import convert_to_lomar_vit
        convert_to_lomar_vit(ckpt, 'dino')


def test_release_sources_get_derived_stage_configs_in_the_paper_plan(tmp_path, capsys,
                                                                      monkeypatch):
    """``--methods supervised dino beit --pretrained NAME=PATH ...``: MAE's stage configs with
    each source's encoder preset and its checkpoint; no pretraining stage; a release source
    without its checkpoint, or a checkpoint for a method not run, is one clear error."""
    from lomar_transfer import benchmark as bm
    from lomar_transfer.cli.benchmark import Suite, parse_args
    monkeypatch.chdir(tmp_path)
    names = ('supervised', 'dino', 'beit')
    for name in names:
        (tmp_path / f'{name}.pth').write_bytes(b'')
    args = parse_args(['--profile', 'paper', '--gpus', '0', '--methods', *names,
                       '--stages', 'pretrain', 'coco', 'ade', '--pretrained',
                       *[f'{n}={n}.pth' for n in names]])
    assert args.stages == ['coco', 'ade']
    Suite(args).print_launch_plan()
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith('tools/')]
    assert len(lines) == 6
    for name, (coco, ade) in zip(names, zip(lines[::2], lines[1::2])):
        preset = ' '.join(f'model.backbone.{k}={v}' for k, v in SOURCES[name].encoder.items())
        ckpt = f'model.backbone.init_cfg.checkpoint={tmp_path / name}.pth'
        for line, stage in ((coco, 'coco'), (ade, 'ade')):
            config = bm.show_path(bm.config_path('paper', 'mae', stage))
            assert line == (f'tools/dist_train.sh {config} {bm.STAGES[stage].gpus} --work-dir '
                            f'work_dirs/benchmark/{name}/{stage} --cfg-options {preset} {ckpt}')
    # MoCo v3 is also pretrained here (the contrastive row): a checkpoint is optional
    args = parse_args(['--methods', 'mocov3', 'dino', '--pretrained', 'dino=dino.pth'])
    assert [(m, s) for _, m, s in Suite(args).jobs if s == 'pretrain'] == [('mocov3', 'pretrain')]
    for argv, message in (
            (['--methods', 'dino', 'mae'], 'dino: benchmarked from the released checkpoint'),
            (['--methods', 'mae', '--pretrained', 'dino=dino.pth'],
             'dino is not among --methods')):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert message in capsys.readouterr().err


def test_beit_table_resize_equals_beits_interp2d():
    """BEiT's geometric-sequence resizing (run_class_finetuning.py:351-411) of a 7x7-offset table
    to 11x11: the values BEiT's own code gives with SciPy 1.13's interp2d (removed in 1.14), run
    once on this table (numpy default_rng(0) normal, float32, 3 heads); all 372 values agreed to
    2.3e-7, as did 13 -> 27 and 27 -> 63 (ViT-B at 224 -> 512)."""
    import numpy as np
    from lomar_transfer.models.backbones.relative_position import resize_beit_table
    table = torch.from_numpy(np.random.default_rng(0).standard_normal((7 * 7 + 3, 3))
                             .astype(np.float32))
    out = resize_beit_table(table, 11)
    assert out.shape == (11 * 11 + 3, 3) and torch.equal(out[-3:], table[-3:])
    assert abs(out.double().sum().item() - 21.37769806583139) < 1e-4
    for (row, head), value in {(0, 0): 0.12573021650314328, (60, 1): -0.6179070472717284,
                               (120, 2): -1.9016352891921997, (37, 0): 1.0422241972844586,
                               (121, 1): -0.8037318587303162}.items():
        assert abs(out[row, head].item() - value) < 1e-6
    assert resize_beit_table(table, 7) is table


@pytest.mark.parametrize('protocol', ['larger input', 'windowed, no class token (ViTDet)'])
def test_beit_tables_follow_the_model_grid(tmp_path, protocol):
    """The shared table of BEiT's 7x7-grid release, expanded per block and resized to each
    block's grid: the larger input's (11x11), or in a ViTDet-style model the window's (7x7, as
    made) in windowed blocks and the whole grid's (14x14) in the global one."""
    from lomar_transfer.models.backbones.relative_position import resize_beit_table
    _, ckpt = beit()
    torch.save(ckpt, tmp_path / 'beit.pth')
    shared = ckpt['model']['rel_pos_bias.relative_position_bias_table']
    if protocol == 'larger input':
        kw, grids = dict(img_size=176), [11, 11]
    else:
        kw, grids = dict(img_size=224, with_cls_token=False, window_size=7,
                         global_attn_indices=(1, ), out_type='featmap'), [7, 14]
    model = VisionTransformer(arch=ARCH, patch_size=PATCH, init_cfg=weights(tmp_path / 'beit.pth'),
                              **{**SOURCES['beit'].encoder, 'out_type': 'raw', **kw})
    model.init_weights()
    for layer, grid in zip(model.layers, grids):
        side = 2 * grid - 1
        torch.testing.assert_close(layer.attn.relative_position_bias_table,
                                   resize_beit_table(shared, side), atol=0, rtol=0)
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, kw['img_size'], kw['img_size']))[0]).all()


# one release file per source, and the stage configs of the paper profile (each dense stage
# under both protocols; MAE-CT's frozen-feature evaluation runs the linear config's backbone)
PROTOCOL_RELEASES = {'supervised': deit, 'mocov3': mocov3, 'dino': dino_full, 'ibot': ibot_full,
                     'beit': beit}
PAPER_STAGES = [('coco', 'default'), ('coco', 'cae'), ('ade', 'default'), ('ade', 'cae'),
                ('finetune', 'default'), ('linear', 'default')]


@pytest.mark.parametrize('source', list(PROTOCOL_RELEASES))
@pytest.mark.slow
def test_each_source_loads_under_every_protocol(tmp_path, source):
    """The derived paper configs (MAE's, with the source's preset over MAE's: what the suite
    runs) build the backbone and load the source's release file, in ViT-B's shape of blocks
    (12, ViTDet's global blocks 2, 5, 8, 11) at a small width, without a refusal (position
    tables resampled or dropped, BEiT's tables resized per block): the patch embedding and the
    last block are the release's."""
    from mmengine.config import Config
    from lomar_transfer import benchmark as bm
    from lomar_transfer.registry import MODELS
    import argparse
    from mmengine.config import DictAction
    official, ckpt = PROTOCOL_RELEASES[source](depth=12)
    torch.save(ckpt, tmp_path / 'release.pth')
    parser = argparse.ArgumentParser()  # the options as tools/train.py parses them
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = parser.parse_args(['--cfg-options', *bm.preset_options(source)]).cfg_options
    for stage, protocol in PAPER_STAGES:
        cfg = Config.fromfile(bm.config_path('paper', source, stage, protocol))
        cfg.merge_from_dict(options)
        backbone = dict(cfg.model.backbone, arch=dict(ARCH, depth=12),
                        init_cfg=weights(tmp_path / 'release.pth'))
        model = MODELS.build(backbone)
        model.init_weights()
        label = f'{source} {stage} {protocol}'
        torch.testing.assert_close(model.patch_embed.proj.weight,
                                   official.patch_embed.proj.weight, msg=label)
        fc1 = model.layers[11].mlp.fc1.weight
        torch.testing.assert_close(fc1, official.blocks[11].mlp.fc1.weight, msg=label)


def test_release_references_are_declared_with_their_source_and_listed():
    """Each release's published numbers live in its declaration, carry a protocol, a
    pretraining and a file:line, and the report lists them (for orientation: no run of the suite
    has their protocols)."""
    from lomar_transfer import benchmark as bm
    declared = [(name, ref) for name, s in SOURCES.items() for ref in s.references]
    assert {name for name, _ in declared} >= {'mocov3', 'dino', 'ibot', 'supervised'}
    for name, ref in declared:
        assert dict(ref, method=name) in bm.REFERENCES
        assert ref['column'] in {h for _, _, h, _ in bm.COLUMNS} and len(ref['pretraining']) == 2
        assert re.search(r'README\.md:\d+', ref['source']) and ref['protocol']
        for profile in ('paper', 'synthetic'):
            assert bm.comparable_reference(name, ref['column'], profile) is None
