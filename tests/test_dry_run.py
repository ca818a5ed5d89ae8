"""``lomar-benchmark --profile paper --dry-run`` on the embedded data as a stand-in for the real
datasets: every paper stage kind runs its own ViT-B config for one iteration on CPU, hands its
checkpoint on, is evaluated by its stock evaluator, and the table reports what it found; missing
data, a config that does not load and a checkpoint that does not load are reported as such."""
import dataclasses
import json
import math
import subprocess
import sys

import pytest

from conftest import REPO
from lomar_transfer import benchmark as bm
from lomar_transfer.cli import benchmark as cli


def dry_run(data, wd, *args, check=True):
    cmd = [sys.executable, str(REPO / 'tools/benchmark.py'), '--profile', 'paper', '--dry-run',
           '--gpus', '0', '--data-root', str(data), '--work-dir', str(wd), '--dry-run-iters',
           '1', '--dry-run-images', '1', *args]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if check:
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return out


def row(wd, method, stage):
    return json.loads((wd / 'dry-run' / method / stage / 'dry_run.json').read_text())


# (train images, classes listed, classes the protocol expects) of conftest's embedded data
COCO, ADE, IMAGENET = [12, 80, 80], [8, 150, 150], [40, 1000, 1000]


@pytest.mark.slow
def test_dry_run_of_every_paper_stage_kind(synthetic_root, tmp_path):
    wd = tmp_path / 'wd'
    dry_run(synthetic_root, wd, '--methods', *bm.PRETRAINED_HERE, '--stages', 'pretrain')
    pretrained = {}
    for method in bm.PRETRAINED_HERE:
        r = row(wd, method, 'pretrain')
        assert r['data']['train_dataloader'] == IMAGENET
        pretrained[method] = (wd / 'dry-run' / method / 'pretrain' / 'last_checkpoint') \
            .read_text().strip()
    # the transfer stages start from the dry run's pretraining (found in the work dir)
    dry_run(synthetic_root, wd, '--methods', 'mae', '--stages', 'finetune', 'linear', 'maect',
            'ade')
    dry_run(synthetic_root, wd, '--methods', 'mae', '--stages', 'ade', '--protocol', 'cae')
    dry_run(synthetic_root, wd, '--methods', 'mae', '--stages', 'coco', '--dry-run-batch', '1')
    out = dry_run(synthetic_root, wd, '--methods', 'mae', '--stages', 'coco', '--protocol',
                  'cae', '--dry-run-batch', '1')
    data = dict(coco=COCO, ade=ADE, finetune=IMAGENET, linear=IMAGENET, maect=IMAGENET)
    rows = [('mae', 'pretrain')] + [(m, 'pretrain') for m in bm.PRETRAINED_HERE if m != 'mae'] \
        + [('mae', s) for s in ('finetune', 'linear', 'maect', 'ade', 'ade-cae', 'coco',
                                'coco-cae')]
    for method, stage in rows:
        r = row(wd, method, stage)
        kind = stage.split('-')[0]
        assert r['data']['train_dataloader'] == data.get(kind, IMAGENET), (stage, r['data'])
        first, last = map(float, r['loss'].split(' -> '))
        assert math.isfinite(first) and math.isfinite(last), r
        assert r['seconds_per_iter'] > 0 and r['peak_mb'] > 100
        assert r['hours'] > 0 and r['device_hours'] == pytest.approx(r['hours'])  # 1 device
        if kind == 'pretrain':
            continue
        n, total, path = r['loaded']
        assert path == pretrained['mae'] and n >= 0.8 * total, r
        if kind == 'coco':  # a detector one iteration old: detections or an honest none
            assert r['metric'].startswith(('APbox', 'evaluated; no detections after 1')), r
        else:
            column = {'ade': 'mIoU', 'finetune': 'top-1 ft', 'linear': 'top-1 lin',
                      'maect': 'k-NN (CT)'}[kind]
            assert r['metric'].startswith(column), r
        if kind in ('coco', 'ade'):
            assert r['data']['test_dataloader'][1:] == data[kind][1:]
    table = (wd / 'dry-run' / 'dry_run.md').read_text()  # this run's rows, then earlier ones
    lines = [ln for ln in table.splitlines() if ln.startswith('| mae | ')]
    assert lines[0].startswith('| mae | coco-cae | 12 / 8 | 80 (80) |') and len(lines) == 8
    assert '| mae | ade-cae | 8 / 6 | 150 (150) |' in table and 'coco-cae' in out.stdout


def test_dry_run_names_missing_data_and_a_broken_config_before_training(
        synthetic_root, tmp_path, monkeypatch, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    linear = bm.STAGES['linear']
    monkeypatch.setitem(bm.STAGES, 'linear', dataclasses.replace(
        linear, configs=dict(linear.configs, paper='no-such-config.py')))
    with pytest.raises(SystemExit) as e:
        cli.main(['--profile', 'paper', '--dry-run', '--gpus', '0', '--methods', 'mae',
                  '--stages', 'pretrain', 'coco', 'linear', '--data-root', str(empty),
                  '--work-dir', str(tmp_path / 'wd')])
    text = str(e.value.code)
    assert text.startswith('error: the dry run cannot start')
    assert f"data_root '{empty}/coco' does not exist" in text
    assert f'unpack it as {empty}/coco/{{train2017,val2017,annotations}}' in text
    assert f"data_root '{empty}/imagenet' does not exist" in text
    assert 'mae linear: its paper config does not load' in text and 'no-such-config' in text
    assert text.count(f"'{empty}/coco'") == 1  # train, val and test loaders: one line
    assert text.count(f"'{empty}/imagenet'") == 1  # 'imagenet/' and 'imagenet' alike
    assert not (tmp_path / 'wd').exists()  # nothing trained, nothing written


@pytest.mark.slow
def test_dry_run_reports_a_checkpoint_that_does_not_load(synthetic_root, tmp_path):
    bad = tmp_path / 'mae_pretrain_vit_base.pth'
    bad.write_bytes(b'PK\x03\x04 not a whole checkpoint')
    wd = tmp_path / 'wd'
    out = dry_run(synthetic_root, wd, '--methods', 'mae', '--stages', 'linear', '--pretrained',
                  f'mae={bad}', check=False)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert '1 stage(s) failed the dry run: mae | linear' in out.stderr
    assert str(bad) in (wd / 'dry-run/mae/linear/train.log').read_text()
    assert '| mae | linear | 40 / 20 | 1000 (1000) |' in out.stdout and 'FAILED' in out.stdout


def test_dry_config_changes_only_what_it_lists_and_the_projection():
    """The ViTDet paper config, dry: iterations, batch per device, data subset, AMP off on CPU;
    everything else as the paper config has it. The full schedule and its projected cost."""
    from mmengine.config import Config
    from lomar_transfer import dry_run as dr
    path = bm.config_path('paper', 'mae', 'coco')
    paper = Config.fromfile(str(path))
    cfg, changes, full = dr.dry_config(path, [], iters=3, images=2, batch=2, gpus=16,
                                       data_root='/d')
    assert full == (184375, 64)  # the paper config's, before the changes
    assert cfg.train_cfg.max_iters == 3 and cfg.train_dataloader.batch_size == 2
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    assert cfg.test_dataloader.dataset.indices == 2
    assert cfg.train_dataloader.dataset.dataset.data_root == '/d/coco/'
    assert cfg.test_evaluator.ann_file == '/d/coco/annotations/instances_val2017.json'
    assert cfg.model == paper.model and cfg.param_scheduler == paper.param_scheduler
    assert cfg.optim_wrapper.optimizer == paper.optim_wrapper.optimizer
    assert 'train_cfg.max_iters: 184375 -> 3' in changes
    assert 'optim_wrapper.type: AmpOptimWrapper -> OptimWrapper' in changes
    assert dr.full_schedule(paper, 16) == (184375, 64)
    cae = Config.fromfile(str(bm.config_path('paper', 'mae', 'coco', 'cae')))
    assert dr.full_schedule(cae, 16) == (12 * math.ceil(118287 / 32), 32)  # 12 epochs of COCO
    # 2 s per step at 2 images per device -> 4 s at the recipe's 64 / 16 = 4 per device
    hours, device_hours = dr.project(2.0, 2, 184375, 64, 16)
    assert hours == pytest.approx(184375 * 4 / 3600) and device_hours == pytest.approx(16 * hours)
