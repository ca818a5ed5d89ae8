"""The suite end to end through tools/benchmark.py (tools/train.py + tools/test.py per stage):
each method's synthetic pretraining checkpoint -> Mask R-CNN (CocoMetric APbox/APmask) ->
UperNet (IoUMetric mIoU) -> ImageNet fine-tune and linear probe (top-1) -> MAE-CT tuning
(frozen-feature k-NN / linear / low-shot / clustering before and after); results table, CSV,
JSON and plots; a second run skips every finished stage."""
import ast
import csv
import functools
import json
import re
import subprocess
import sys

import cv2
import pytest

from conftest import REPO
from lomar_transfer import benchmark as bm
from lomar_transfer.datasets.synthetic import make_all

STAGES = ['pretrain', 'coco', 'ade', 'finetune', 'linear', 'maect']


def run_suite(cwd, *extra):
    cmd = [sys.executable, str(REPO / 'tools/benchmark.py'), '--work-dir', 'wd', '--stages',
           *STAGES, *extra, '--cfg-options', 'train_cfg.max_iters=2',
           'default_hooks.logger.interval=1']
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return out.stdout


@pytest.fixture(scope='module')
def suite(tmp_path_factory):
    cwd = tmp_path_factory.mktemp('suite')
    # the configs read data/synthetic relative to the working directory: a small copy here
    make_all(cwd / 'data/synthetic', seed=0, coco=dict(num_train=8, num_val=4),
             ade20k=dict(num_train=6, num_val=4),
             imagenet=dict(num_train_per_class=4, num_val_per_class=2))  # >= a batch of 32
    return cwd, run_suite(cwd)


# table header -> (stage, key of that stage's evaluator output, factor to the table's units):
# tools/test.py --out (COCO AP x 100, mIoU and top-1 as they are), tools/feature_eval.py --out
# for the MAE-CT (CT) columns; WORK_DIR/METHOD/STAGE/metrics.json after training,
# untrained.json before
TABLE = {
    'APbox': ('coco', 'coco/bbox_mAP', 100), 'APmask': ('coco', 'coco/segm_mAP', 100),
    'mIoU': ('ade', 'mIoU', 1), 'top-1 ft': ('finetune', 'accuracy/top1', 1),
    'top-1 lin': ('linear', 'accuracy/top1', 1), 'k-NN (CT)': ('maect', 'knn/top1', 1),
    'feat. lin. (CT)': ('maect', 'linear/top1', 1), '1-shot (CT)': ('maect', 'lowshot1/top1', 1),
    'cluster (CT)': ('maect', 'cluster/acc', 1)}
LOADED = re.compile(r'loaded (\d+)/(\d+) backbone tensors from (\S+)\n((?:  .*\n)*)')


def check_table_is_the_evaluator_outputs(wd, methods):
    """Every value of results.json, results.csv and results.md, trained and "(untrained)", is
    the number that stage's evaluator wrote, in the table's units."""
    results = json.loads((wd / 'results.json').read_text())
    assert [r['method'] for r in results['rows']] == list(methods)
    csv_rows = {r['method']: r for r in csv.DictReader(open(wd / 'results.csv'))}
    md = (wd / 'results.md').read_text().split('\n| method | ')[1].split('\n\n')[0]
    header, _, *lines = md.splitlines()
    cols = ['method'] + header.rstrip(' |').split(' | ')
    md_rows = {c[0]: dict(zip(cols, c)) for c in
               (ln.strip('| ').split(' | ') for ln in lines)}
    assert list(md_rows) == list(csv_rows) == list(methods)
    for row in results['rows']:
        method = row['method']
        for header, (stage, key, factor) in TABLE.items():
            out = {name: json.loads((wd / method / stage / f'{name}.json').read_text())
                   for name in ('metrics', 'untrained')}
            assert row['stages'][stage]['metrics'] == out['metrics']
            assert row['stages'][stage]['untrained'] == out['untrained']
            value, before = out['metrics'][key] * factor, out['untrained'][key] * factor
            where = f'{method} {header}: {stage}/metrics.json {key} = {out["metrics"][key]}, ' \
                f'untrained.json {out["untrained"][key]}'
            assert row['metrics'][header] == pytest.approx(value), where
            assert row['metrics'][f'{header} (untrained)'] == pytest.approx(before), where
            assert float(csv_rows[method][header]) == pytest.approx(value), where
            assert float(csv_rows[method][f'{header} untrained']) == pytest.approx(before), where
            assert md_rows[method][header] == f'{value:.1f} ({before:.1f})', where


def test_table_values_are_the_evaluator_outputs(tmp_path):
    """The same check on stage folders as the runner leaves them, with values no scale or swap
    can map onto each other (the synthetic runs' COCO mask AP is 0: x 100 or not)."""
    methods, k = ('lomar', 'mae'), iter(range(1, 100))
    for method in methods:
        for stage in dict.fromkeys(s for s, _, _ in TABLE.values()):
            outs = {name: {key: round(0.05 + 0.017 * next(k), 3) if stage == 'coco' else
                           round(3.1 + 2.3 * next(k), 2)  # COCO AP in [0, 1], others in %
                           for s, key, _ in TABLE.values() if s == stage}
                    for name in ('metrics', 'untrained')}
            for name, metrics in outs.items():
                (tmp_path / method / stage).mkdir(parents=True, exist_ok=True)
                (tmp_path / method / stage / f'{name}.json').write_text(json.dumps(metrics))
            bm.write_json_atomic(tmp_path / method / stage / 'result.json', dict(
                method=method, stage=stage, seconds=1., pictures=[], **outs))
    rows = bm.aggregate_seeds({0: bm.collect(tmp_path, methods, STAGES[1:])})
    bm.write_results(tmp_path, rows, STAGES[1:], 'synthetic')
    check_table_is_the_evaluator_outputs(tmp_path, methods)


@pytest.mark.slow
def test_every_method_goes_through_every_stage(suite):
    cwd, stdout = suite
    wd = cwd / 'wd'
    results = json.loads((wd / 'results.json').read_text())
    check_table_is_the_evaluator_outputs(wd, bm.METHODS)
    for row in results['rows']:
        method = row['method']
        assert set(row['stages']) == set(STAGES)
        coco = row['stages']['coco']['metrics']
        assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(coco)
        # every transfer stage started from this method's own pretraining checkpoint, fully
        pre_ckpt = row['stages']['pretrain']['checkpoint']
        assert pre_ckpt.endswith(f'wd/{method}/pretrain/iter_2.pth')
        for stage in STAGES[1:]:
            assert row['stages'][stage]['pretrained'] == pre_ckpt
            log = (wd / method / stage / 'train.log').read_text()
            (n, total, path, report), = LOADED.findall(log)
            assert path == pre_ckpt
            # only what fine-tuning adds starts anew: fc_norm (MAE, LoMaR) and CAE's relative
            # position bias tables
            missing = re.search(r'new \(not in the checkpoint[^)]*\): (\[.*?\])', report)
            missing = ast.literal_eval(missing.group(1)) if missing else []
            assert int(n) + len(missing) == int(total)
            assert all(k.startswith('fc_norm.') or k.endswith('relative_position_bias_table')
                       for k in missing) and (stage == 'finetune' or not missing), missing
            # the "(untrained)" value is this model before training (tools/test.py CONFIG none;
            # MAE-CT: the feature evaluation of the pretraining checkpoint): the same tensors
            # of the same checkpoint loaded
            before = LOADED.findall((wd / method / stage / 'untrained.log').read_text())
            assert [b[:3] for b in before] == [(n, total, pre_ckpt)], (method, stage, before)
        assert len(row['stages']['pretrain']['losses']) == 2
    table = (wd / 'results.md').read_text()
    assert re.search(r'\| lomar \| [\d.]+ \([\d.]+\) \|', table)
    # published numbers only beside runs of their protocol: none for the synthetic profile
    assert 'Published numbers measured with the protocol and pretraining of these runs:\nnone' \
        in table
    assert '| mae | APbox | 51.6 | ViTDet Mask R-CNN, simple pyramid, 100 ep LSJ 1024 |' in table
    assert results['comparable_references'] == []
    rows = list(csv.DictReader(open(wd / 'results.csv')))
    assert [r['method'] for r in rows] == list(bm.METHODS) and 'APmask' in rows[0]
    for png in ('loss_curves.png', 'metrics.png'):
        assert (wd / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'stage 18/18' in stdout and 'train 2/2' in stdout  # live progress
    # pictures: reconstructions of each pretraining, drawn COCO / ADE20K predictions of each
    # test image, the first of each linked from results.md
    for row in results['rows']:
        method, stages = row['method'], row['stages']
        assert len(stages['pretrain']['pictures']) == 2
        assert len(stages['coco']['pictures']) == 4 and len(stages['ade']['pictures']) == 4
        for stage in ('pretrain', 'coco', 'ade'):
            first = stages[stage]['pictures'][0]
            assert first.startswith(f'{method}/{stage}/pictures/')
            assert f']({first})' in table and cv2.imread(str(wd / first)) is not None
        assert not stages['linear']['pictures']


@pytest.mark.slow
def test_second_run_skips_finished_stages(suite):
    cwd, _ = suite
    ckpt = cwd / 'wd/mae/coco/iter_2.pth'
    before = ckpt.stat().st_mtime_ns
    stdout = run_suite(cwd, '--methods', 'mae')
    assert stdout.count('complete, skipped') == len(STAGES)
    assert 'training:' not in stdout and ckpt.stat().st_mtime_ns == before


@pytest.mark.slow
def test_external_checkpoint_needs_one_method(tmp_path):
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    out = subprocess.run([sys.executable, str(REPO / 'tools/benchmark.py'), '--pretrained',
                          str(ckpt)], capture_output=True, text=True)
    assert out.returncode == 2 and 'exactly one --methods' in out.stderr


@functools.cache
def written_last(config):
    """The checkpoint a training config writes at its end, read from the config as mmengine's
    CheckpointHook names it: epoch_<max_epochs>.pth for an epoch-based run, iter_<max_iters>.pth
    for an iteration-based one (save_last: the last one is written whatever the interval)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / config))
    hook = cfg.default_hooks.checkpoint
    assert hook.get('save_last', True) and not hook.get('filename_tmpl'), hook
    if cfg.train_cfg.type.endswith('EpochBasedTrainLoop'):
        assert hook.get('by_epoch', True), hook
        return f'epoch_{cfg.train_cfg.max_epochs}.pth'
    assert cfg.train_cfg.type.endswith('IterBasedTrainLoop') and hook.by_epoch is False
    return f'iter_{cfg.train_cfg.max_iters}.pth'


# the paper recipes: pretraining per method, transfer per stage (default and CAE dense protocol)
PAPER_PRETRAIN = {'lomar': 'configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
                  'mae': 'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
                  'cae': 'configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py'}
PAPER_TRANSFER = {
    'coco': dict(default='mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py',
                 cae='mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py'),
    'ade': dict(default='upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py',
                cae='upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py'),
    'finetune': dict(default='vit-base-p16_8xb128-coslr-100e_in1k.py'),
    'linear': dict(default='vit-base-p16_8xb2048-linear-coslr-90e_in1k.py')}


def paper_plan(method, protocol, pretrained=None):
    """The tools/dist_train.sh lines of one method's paper plan (all stages), each config run on
    the GPUs its name says (16xb4: 16), each transfer stage from the file its pretraining writes
    last, MAE-CT's tuning from the last file of its head phase; 'scratch' runs MAE's transfer
    configs from random initialisation (init_cfg=None) and no MAE-CT (nothing to tune)."""
    def line(config, folder, options=''):
        assert (REPO / config).is_file(), config
        gpus = re.search(r'_(\d+)xb\d+', config).group(1)
        return (f'tools/dist_train.sh {config} {gpus} --work-dir work_dirs/benchmark/{method}/'
                f'{folder}' + (f' --cfg-options {options}' if options else ''))

    lines = []
    if pretrained is None and method != 'scratch':
        lines.append(line(PAPER_PRETRAIN[method], 'pretrain'))
        pretrained = (f'work_dirs/benchmark/{method}/pretrain/'
                      + written_last(PAPER_PRETRAIN[method]))
    # the backbone weights: the checkpoint of the configs' init_cfg=Pretrained, or none
    weights = ('model.backbone.init_cfg=None' if pretrained is None else
               f'model.backbone.init_cfg.checkpoint={pretrained}')
    for stage, names in PAPER_TRANSFER.items():
        folder = f'{stage}-cae' if protocol in names and protocol != 'default' else stage
        lines.append(line(f'configs/{"mae" if method == "scratch" else method}/'
                          + names.get(protocol, names['default']), folder, weights))
    if method != 'scratch':
        head = f'configs/maect/maect-{method}_vit-base-p16_8xb128-coslr-20e-head_in1k.py'
        lines.append(line(head, 'maect/head', weights))
        lines.append(line(head.replace('-head_', '-tune_'), 'maect', 'load_from=work_dirs/'
                          f'benchmark/{method}/maect/head/{written_last(head)}'))
    return lines


@pytest.mark.parametrize('protocol', ['default', 'cae', 'external checkpoint'])
@pytest.mark.slow
def test_paper_profile_without_gpu_prints_the_whole_plan(tmp_path, protocol):
    """Without GPUs the paper profile prints every command of every stage, exactly: config, GPU
    count, work dir, and the checkpoint each stage starts from (the file the previous run
    actually writes last); nothing is started."""
    methods, args = [*bm.METHODS, *bm.BASELINES], ['--protocol', protocol]
    if protocol == 'external checkpoint':
        methods, args = ['cae'], ['--pretrained', 'cae_pretrain_vit_base.pth']
        (tmp_path / 'cae_pretrain_vit_base.pth').write_bytes(b'')
    out = subprocess.run([sys.executable, str(REPO / 'tools/benchmark.py'), '--profile', 'paper',
                          '--gpus', '0', '--methods', *methods, '--stages', *STAGES, *args],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    printed = [ln.split('\n') for ln in out.stdout.split('\n\n')]
    plans = [[ln for ln in block if ln.startswith('tools/')] for block in printed]
    plans = [p for p in plans if p]
    if protocol == 'external checkpoint':  # no pretraining: every stage from the given file
        ckpt = tmp_path / 'cae_pretrain_vit_base.pth'  # (named absolute, as the stages get it)
        assert plans == [paper_plan('cae', 'default', str(ckpt.resolve()))]
    else:
        assert len(plans) == len(methods)
        for method, plan in zip(methods, plans):
            expected = paper_plan(method, protocol)
            assert plan == expected, method
    assert not (tmp_path / 'work_dirs').exists()  # nothing was started


def test_references_only_beside_runs_of_their_protocol():
    """A published number is tied to a protocol and a pretraining: the paper profile's MAE COCO
    run (ViTDet recipe) gets ViTDet's 51.6, not the MAE paper's FPN-recipe 50.3; CAE's DALL-E
    numbers never sit beside the suite's pixel CAE; the synthetic profile gets none."""
    assert bm.comparable_reference('mae', 'APbox', 'paper')['value'] == 51.6
    assert bm.comparable_reference('mae', 'top-1 ft', 'paper')['value'] == 83.6
    # mmseg's run of the official MAE weights, not the MAE paper's 100-epoch BEiT-code 48.1
    assert bm.comparable_reference('mae', 'mIoU', 'paper')['value'] == 48.13
    assert bm.comparable_reference('lomar', 'top-1 ft', 'paper')['value'] == 84.1
    # under CAE's own protocol: the CAE paper's MAE numbers
    assert bm.comparable_reference('mae', 'APbox', 'paper', 'cae')['value'] == 48.4
    assert bm.comparable_reference('mae', 'APmask', 'paper', 'cae')['value'] == 42.6
    assert bm.comparable_reference('mae', 'mIoU', 'paper', 'cae') is None
    assert bm.comparable_reference('mae', 'top-1 ft', 'paper', 'cae')['value'] == 83.6
    for column in ('APbox', 'APmask', 'mIoU', 'top-1 ft', 'top-1 lin'):
        assert bm.comparable_reference('cae', column, 'paper') is None
        assert bm.comparable_reference('mae', column, 'synthetic') is None
    for ref in bm.REFERENCES:
        assert ref['source'] and ref['protocol'] and len(ref['pretraining']) == 2


@pytest.mark.slow
def test_several_seeds_give_mean_std_and_only_real_differences(tmp_path):
    """Per-seed results -> mean ± sd per method; a difference is reported only when Welch's test
    on the per-seed values says it exceeds the noise (APbox here), not when the spread covers it
    (mIoU)."""
    values = {'lomar': ([30.1, 30.6, 29.9], [20.0, 26.0, 23.0]),
              'mae': ([34.0, 34.4, 33.8], [22.0, 27.0, 20.0])}
    per_seed = {seed: [dict(method=m, metrics={'APbox': ap[i], 'mIoU': miou[i]},
                            stages={'coco': dict(seconds=60.), 'ade': dict(seconds=30.)})
                       for m, (ap, miou) in values.items()] for i, seed in enumerate((0, 1, 2))}
    rows = bm.aggregate_seeds(per_seed)
    lomar = rows[0]
    assert lomar['metrics']['APbox'] == pytest.approx(30.2)
    assert lomar['std']['APbox'] == pytest.approx(0.3606, abs=1e-4)
    assert lomar['n']['APbox'] == 3 and lomar['seeds'][1]['APbox'] == 30.6
    table = bm.write_results(tmp_path, rows, ['coco', 'ade'], 'synthetic', seeds=(0, 1, 2))
    assert '| lomar | 30.2 ± 0.4 | - | 23.0 ± 3.0 | 4.5 min |' in table
    assert 'mean ± standard deviation over seeds 0, 1, 2' in table
    found = bm.method_differences(rows, ['APbox', 'mIoU'])
    assert [(d['metric'], d['better'], d['worse']) for d in found] == [('APbox', 'mae', 'lomar')]
    assert found[0]['p'] < 0.05
    assert '- APbox: mae > lomar by 3.9 (p = ' in table and 'mIoU:' not in table.split(
        'noise')[1].split('Published')[0]
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert saved['seeds'] == [0, 1, 2] and saved['differences'] == found
    rows_csv = list(csv.DictReader(open(tmp_path / 'results.csv')))
    assert float(rows_csv[1]['APbox std']) == pytest.approx(0.3055, abs=1e-4)
    assert bm.plot_results(tmp_path, rows, ['coco', 'ade'], seeds=(0, 1, 2))

    one = bm.write_results(tmp_path, bm.aggregate_seeds({0: per_seed[0]}), ['coco', 'ade'],
                           'synthetic')
    assert 'one seed (0)' in one and '±' not in one.split('One seed:')[0]
    assert '| lomar | 30.1 | - | 20.0 | 1.5 min |' in one


@pytest.mark.slow
def test_seeds_run_every_stage_per_seed(tmp_path):
    make_all(tmp_path / 'data/synthetic', seed=0, coco=dict(num_train=2, num_val=1),
             ade20k=dict(num_train=4, num_val=2),
             imagenet=dict(num_train_per_class=4, num_val_per_class=1))
    stdout = run_suite(tmp_path, '--methods', 'mae', '--stages', 'pretrain', 'ade',
                       '--no-untrained', '--seeds', '3', '4', '--work-dir', 'wd_seeds')
    wd = tmp_path / 'wd_seeds'
    for seed in (3, 4):
        pre = json.loads((wd / f'seed{seed}/mae/pretrain/result.json').read_text())
        ade = json.loads((wd / f'seed{seed}/mae/ade/result.json').read_text())
        assert pre['seed'] == ade['seed'] == seed and ade['pretrained'] == pre['checkpoint']
        assert pre['checkpoint'].endswith(f'wd_seeds/seed{seed}/mae/pretrain/iter_2.pth')
        for stage in ('pretrain', 'ade'):  # the seed reached mmengine
            config = next((wd / f'seed{seed}/mae/{stage}').glob('*/vis_data/config.py'))
            assert f'seed={seed}' in config.read_text().split('randomness')[1].split(')')[0]
        assert len(pre['pictures']) == 2 and len(ade['pictures']) == 2
    results = json.loads((wd / 'results.json').read_text())
    assert results['seeds'] == [3, 4] and results['rows'][0]['n']['mIoU'] == 2
    table = (wd / 'results.md').read_text()
    assert re.search(r'\| mae \| [\d.]+ ± [\d.]+ \|', table)
    assert 'mean ± standard deviation over seeds 3, 4' in table
    assert 'stage 4/4: mae ade seed 4' in stdout


@pytest.mark.slow
def test_the_contrastive_row_is_pretrained_here_and_drawn_as_attention(tmp_path):
    """``--methods mocov3 scratch`` on the embedded data: the suite pretrains MoCo v3 itself
    (mmpretrain's MoCoV3 with our ViT), hands its checkpoint to COCO under MAE's config with
    MoCo v3's preset, and draws the pretrained encoder's attention maps (no reconstruction: a
    contrastive model has none), linked from results.md."""
    make_all(tmp_path / 'data/synthetic', seed=0, coco=dict(num_train=8, num_val=4),
             ade20k=dict(num_train=2, num_val=2),
             imagenet=dict(num_train_per_class=4, num_val_per_class=2))
    run_suite(tmp_path, '--methods', 'mocov3', 'scratch', '--stages', 'pretrain', 'coco',
              '--no-untrained')
    wd = tmp_path / 'wd'
    pre = json.loads((wd / 'mocov3/pretrain/result.json').read_text())
    coco = json.loads((wd / 'mocov3/coco/result.json').read_text())
    assert bm.show_path(bm.config_path('synthetic', 'mocov3', 'pretrain')) in pre['config']
    assert coco['pretrained'] == pre['checkpoint'] and 'coco/bbox_mAP' in coco['metrics']
    assert coco['config'] == bm.show_path(bm.config_path('synthetic', 'mae', 'coco'))
    dumped = (wd / 'mocov3/coco/mask-rcnn_vit-tiny-p8_synthetic-coco.py').read_text()
    backbone = dumped.split('backbone=dict(')[1].split('neck=')[0]
    assert "sincos_order='cae'" in backbone  # MoCo v3's preset over MAE's
    train_log = (wd / 'mocov3/coco/train.log').read_text()
    assert re.search(r'loaded (\d+)/\1 backbone tensors', train_log)
    assert pre['pictures'] == [] and len(pre['attention']) == 2
    assert not (wd / 'scratch/pretrain').exists()
    table = (wd / 'results.md').read_text()
    assert f"- mocov3 attention maps: [{pre['attention'][0].split('/')[-1]}]" \
           f"({pre['attention'][0]})" in table
    assert cv2.imread(str(wd / pre['attention'][0])) is not None
