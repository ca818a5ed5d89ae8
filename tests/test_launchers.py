"""tools/dist_train.sh on CPU (two gloo processes) trains like one process with the same global
batch; MAE-CT gathers its queue over processes and passes its head-only phase under DDP; the
Slurm scripts hand srun the expected command."""
import json
import os
import subprocess
import sys

import torch

from conftest import REPO

CONFIG = 'configs/mae/vit-tiny-p8_finetune_synthetic-imagenet.py'


def train(tmp_path, synthetic_root, name, batch_size, nproc=None):
    # deterministic steps: no random crops / flips / mixup / drop path, no pretrained file
    config = tmp_path / f'{name}.py'
    config.write_text(f"""_base_ = '{REPO / CONFIG}'
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(112, 112)),
                  dict(type='PackInputs')]
train_dataloader = dict(batch_size={batch_size}, dataset=dict(
    data_root='{synthetic_root}/imagenet', pipeline=train_pipeline))
model = dict(train_cfg=None, backbone=dict(drop_path_rate=0., pretrained=None))
train_cfg = dict(max_iters=4)
param_scheduler = []
val_cfg = val_dataloader = val_evaluator = None
default_hooks = dict(checkpoint=dict(interval=4), logger=dict(interval=1))
""")
    work_dir = tmp_path / name
    if nproc:
        cmd = ['bash', 'tools/dist_train.sh', str(config), str(nproc)]
    else:
        cmd = [sys.executable, 'tools/train.py', str(config)]
    env = dict(os.environ, PORT='29533')
    out = subprocess.run(cmd + ['--work-dir', str(work_dir)], cwd=REPO, capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return work_dir


def test_two_gloo_processes_match_one_process(tmp_path, synthetic_root):
    one = train(tmp_path, synthetic_root, 'one', batch_size=8)
    two = train(tmp_path, synthetic_root, 'two', batch_size=4, nproc=2)
    log = next(two.glob('*/*.log')).read_text()
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    a = torch.load(one / 'iter_4.pth', map_location='cpu', weights_only=False)['state_dict']
    b = torch.load(two / 'iter_4.pth', map_location='cpu', weights_only=False)['state_dict']
    # DDP averages the two half-batch gradients = the gradient of the 8-image batch (the
    # DefaultSampler hands rank r the images r, r+2, ... of the same shuffled order); float
    # summation order differs, hence a tolerance instead of bit equality
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 2e-5, worst
    # ... and training did move the weights: the single-process losses change every step
    rows = [json.loads(ln) for ln in next(one.glob('*/vis_data/scalars.json')).read_text()
            .splitlines()]
    losses = [r['loss'] for r in rows if 'loss' in r]
    assert len(losses) == 4 and len(set(losses)) == 4


def test_maect_on_two_gloo_processes(tmp_path, synthetic_root):
    """The support queue gathers both ranks' projections, the predictions are gathered with
    gradient, and DDP accepts the head phase (no encoder gradient) and the switch after it."""
    cmd = ['bash', 'tools/dist_train.sh', 'configs/maect/maect-mae_vit-tiny-p8_synthetic.py',
           '2', '--work-dir', str(tmp_path), '--cfg-options',
           f'train_dataloader.dataset.data_root={synthetic_root}/imagenet',
           'train_dataloader.batch_size=4', 'train_cfg.max_iters=4', 'model.head_init_iters=2',
           'model.backbone.pretrained=None', 'default_hooks.checkpoint.interval=4']
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PORT='29534'))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    state = torch.load(tmp_path / 'iter_4.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    ids = state['head.queue_ids']
    assert int(state['step']) == 4
    assert (ids[:32] >= 0).all() and (ids[32:] == -1).all()  # 4 steps x 2 ranks x 4 images
    assert len(ids[:8].unique()) == 8  # one step: both ranks' different images


def test_slurm_scripts_call_srun(tmp_path):
    fake = tmp_path / 'srun'
    fake.write_text('#!/bin/sh\necho "srun $@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='16',
               SRUN_ARGS='--quotatype=auto')
    out = subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'lomar', CONFIG, '--work-dir',
                          'w'], cwd=REPO, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    args = out.stdout.split()
    assert args[:3] == ['srun', '-p', 'gpu'] and '--job-name=lomar' in args
    assert '--ntasks=16' in args and '--ntasks-per-node=8' in args and '--gres=gpu:8' in args
    assert '--quotatype=auto' in args
    assert args[-5:] == [CONFIG, '--work-dir', 'w', '--launcher', 'slurm']
    assert args[-6].endswith('tools/train.py')
    out = subprocess.run(['bash', 'tools/slurm_test.sh', 'gpu', 'ev', CONFIG, 'c.pth'],
                         cwd=REPO, capture_output=True, text=True, env=env)
    args = out.stdout.split()
    assert args[-5].endswith('tools/test.py')
    assert args[-4:] == [CONFIG, 'c.pth', '--launcher', 'slurm']


def test_dist_test_untrained_matches_one_process(tmp_path, synthetic_root):
    """tools/dist_test.sh CONFIG none N initialises the model inside its DDP wrapper (and the
    same weights on every rank): the metrics of two gloo processes equal one process's."""
    config = 'configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py'
    opts = ['--seed', '0', '--cfg-options', 'model.backbone.pretrained=None',
            f'test_dataloader.dataset.data_root={synthetic_root}/imagenet']
    metrics = {}
    for name, cmd in (('one', [sys.executable, 'tools/test.py', config, 'none']),
                      ('two', ['bash', 'tools/dist_test.sh', config, 'none', '2'])):
        out = subprocess.run(cmd + ['--work-dir', str(tmp_path / name), '--out',
                                    str(tmp_path / f'{name}.json'), *opts],
                             cwd=REPO, capture_output=True, text=True,
                             env=dict(os.environ, PORT='29733'))
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        metrics[name] = json.loads((tmp_path / f'{name}.json').read_text())
    assert 'accuracy/top1' in metrics['one'] and metrics['two'] == metrics['one']


def test_slurm_scripts_return_the_srun_status(tmp_path):
    fake = tmp_path / 'srun'
    fake.write_text('#!/bin/sh\nexit 3\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}')
    for script, args in (('tools/slurm_train.sh', [CONFIG]),
                         ('tools/slurm_test.sh', [CONFIG, 'c.pth'])):
        out = subprocess.run(['bash', script, 'gpu', 'job', *args], cwd=REPO,
                             capture_output=True, text=True, env=env)
        assert out.returncode == 3, (script, out.returncode, out.stderr)
