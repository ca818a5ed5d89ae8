"""The suite end to end through tools/benchmark.py (tools/train.py + tools/test.py per stage):
each method's synthetic pretraining checkpoint -> Mask R-CNN (CocoMetric APbox/APmask) ->
UperNet (IoUMetric mIoU) -> ImageNet fine-tune and linear probe (top-1) -> MAE-CT tuning
(frozen-feature k-NN / linear / low-shot / clustering before and after); results table, CSV,
JSON and plots; a second run skips every finished stage."""
import ast
import csv
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


def test_every_method_goes_through_every_stage(suite):
    cwd, stdout = suite
    wd = cwd / 'wd'
    results = json.loads((wd / 'results.json').read_text())
    assert [r['method'] for r in results['rows']] == list(bm.METHODS)
    for row in results['rows']:
        method = row['method']
        assert set(row['stages']) == set(STAGES)
        for header in ('APbox', 'APmask', 'mIoU', 'top-1 ft', 'top-1 lin', 'k-NN (CT)',
                       'feat. lin. (CT)', '1-shot (CT)', 'cluster (CT)'):
            assert 0 <= row['metrics'][header] <= 100
            assert 0 <= row['metrics'][header + ' (untrained)'] <= 100
        coco = row['stages']['coco']['metrics']
        assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(coco)
        # every transfer stage started from this method's own pretraining checkpoint, fully
        pre_ckpt = row['stages']['pretrain']['checkpoint']
        assert pre_ckpt.endswith(f'wd/{method}/pretrain/iter_2.pth')
        for stage in STAGES[1:]:
            assert row['stages'][stage]['pretrained'] == pre_ckpt
            log = (wd / method / stage / 'train.log').read_text()
            n, total = re.search(r'loaded (\d+)/(\d+) backbone tensors from (\S+)', log).groups()[:2]
            assert f'from {pre_ckpt}' in log
            # only what fine-tuning adds starts anew: fc_norm (MAE, LoMaR) and CAE's relative
            # position bias tables
            missing = re.search(r'new \(not in the checkpoint[^)]*\): (\[.*?\])', log)
            missing = ast.literal_eval(missing.group(1)) if missing else []
            assert int(n) + len(missing) == int(total)
            assert all(k.startswith('fc_norm.') or k.endswith('relative_position_bias_table')
                       for k in missing) and (stage == 'finetune' or not missing), missing
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


def test_second_run_skips_finished_stages(suite):
    cwd, _ = suite
    ckpt = cwd / 'wd/mae/coco/iter_2.pth'
    before = ckpt.stat().st_mtime_ns
    stdout = run_suite(cwd, '--methods', 'mae')
    assert stdout.count('complete, skipped') == len(STAGES)
    assert 'training:' not in stdout and ckpt.stat().st_mtime_ns == before


def test_external_checkpoint_needs_one_method(tmp_path):
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    out = subprocess.run([sys.executable, str(REPO / 'tools/benchmark.py'), '--pretrained',
                          str(ckpt)], capture_output=True, text=True)
    assert out.returncode == 2 and 'exactly one --methods' in out.stderr


def test_paper_profile_without_gpu_prints_launch_commands(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / 'tools/benchmark.py'), '--profile',
                          'paper', '--gpus', '0', '--methods', 'lomar'], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('tools/dist_train.sh')]
    assert lines[0].startswith('tools/dist_train.sh configs/lomar/lomar_vit-base-p16_8xb512')
    assert 'configs/lomar/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py 16' in lines[1]
    assert 'model.backbone.pretrained=work_dirs/benchmark/lomar/pretrain/' in lines[1]
    assert not (tmp_path / 'work_dirs').exists()  # nothing was started


def test_paper_profile_runs_either_dense_protocol(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / 'tools/benchmark.py'), '--profile',
                          'paper', '--gpus', '0', '--methods', 'mae', '--protocol', 'cae'],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('tools/dist_train.sh')]
    assert len(lines) == 3
    assert lines[1].startswith('tools/dist_train.sh configs/mae/'
                               'mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py 16 '
                               '--work-dir work_dirs/benchmark/mae/coco-cae ')
    assert lines[2].startswith('tools/dist_train.sh configs/mae/'
                               'upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py 8 '
                               '--work-dir work_dirs/benchmark/mae/ade-cae ')


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
