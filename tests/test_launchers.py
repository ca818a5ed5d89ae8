"""tools/dist_train.sh on CPU (two gloo processes) trains like one process with the same global
batch, fine-tuning and MAE-CT (whose support queue and InfoNCE span both processes, and whose
head-only phase passes under DDP); dist_test.sh gives one process's metrics; the Slurm scripts
hand srun the expected command."""
import json
import math
import os
import subprocess
import sys

import pytest
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
model = dict(train_cfg=None, backbone=dict(drop_path_rate=0., init_cfg=None))
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


@pytest.mark.slow
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


MAECT = 'configs/maect/maect-mae_vit-tiny-p8_synthetic.py'


def train_maect(tmp_path, synthetic_root, name, batch_size, nproc=None):
    """4 MAE-CT iterations (2 head-only, then with the encoder), a checkpoint after each.

    What depends on how the batch is split over processes is taken out, to compare the rest:
    each process draws its own random crops (here: none; the second view is the flipped image),
    BN1d normalises each process's part of the batch (SyncBN is GPU-only; here a LayerNorm over
    the features: GroupNorm with one group, which takes NonLinearNeck's ``affine``), and Adam's
    first steps are ~lr * sign(gradient), which turns float-order noise in near-zero gradients
    into lr-sized differences (here SGD)."""
    config = tmp_path / f'{name}.py'
    config.write_text(f"""_base_ = '{REPO / MAECT}'
views = [[dict(type='Resize', scale=(112, 112))],
         [dict(type='Resize', scale=(112, 112)), dict(type='RandomFlip', prob=1.)]]
train_dataloader = dict(batch_size={batch_size}, dataset=dict(
    data_root='{synthetic_root}/imagenet',
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='MultiView', num_views=[1, 1], transforms=views),
              dict(type='PackInputs')]))
norm = dict(type='GN', num_groups=1)
model = dict(head_init_iters=2, backbone=dict(init_cfg=None), neck=dict(norm_cfg=norm),
             head=dict(predictor=dict(norm_cfg=norm)))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.1, momentum=0.9,
                                    weight_decay=0.))
param_scheduler = []
train_cfg = dict(max_iters=4)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1), logger=dict(interval=1))
""")
    work_dir = tmp_path / name
    if nproc:
        cmd = ['bash', 'tools/dist_train.sh', str(config), str(nproc)]
    else:
        cmd = [sys.executable, 'tools/train.py', str(config)]
    out = subprocess.run(cmd + ['--work-dir', str(work_dir)], cwd=REPO, capture_output=True,
                         text=True, env=dict(os.environ, PORT='29534'))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return {i: torch.load(work_dir / f'iter_{i}.pth', map_location='cpu',
                          weights_only=False)['state_dict'] for i in (1, 2, 4)}, work_dir


@pytest.mark.slow
def test_maect_two_gloo_processes_match_one_process(tmp_path, synthetic_root):
    """MAE-CT on two gloo processes (4 images each) trains like one process with the 8 images:
    the support queue gathers both ranks' projections (the nearest neighbours are looked up in
    the same queue), the predictions are gathered with gradient (InfoNCE over the global batch),
    and DDP accepts the head phase (no encoder gradient) and the switch after it."""
    one, _ = train_maect(tmp_path, synthetic_root, 'one', batch_size=8)
    two, work_dir = train_maect(tmp_path, synthetic_root, 'two', batch_size=4, nproc=2)
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    a, b = one[4], two[4]
    assert a.keys() == b.keys() and int(a['step']) == int(b['step']) == 4
    # the weights after 4 steps (float summation order differs, hence a tolerance)
    weights = [k for k in a if a[k].is_floating_point() and not k.startswith('head.queue')]
    worst = max((a[k] - b[k]).abs().max().item() for k in weights)
    assert worst < 1e-5, worst
    # the queue: the same rows per image; the two ranks' rows are interleaved differently
    # (rank r holds the images r, r+2, ... of the shuffled order, gathered rank by rank)
    assert int(a['head.queue_ptr']) == int(b['head.queue_ptr']) == 32
    ids_a, ids_b = a['head.queue_ids'], b['head.queue_ids']
    assert (ids_b[:32] >= 0).all() and (ids_b[32:] == -1).all()  # 4 steps x 2 ranks x 4 images
    assert len(ids_b[:32].unique()) == 32  # both ranks' images, none twice in the epoch
    for step in range(4):
        rows = slice(8 * step, 8 * step + 8)
        assert set(ids_a[rows].tolist()) == set(ids_b[rows].tolist())
    order_a, order_b = ids_a[:32].argsort(), ids_b[:32].argsort()
    assert torch.equal(ids_a[order_a], ids_b[order_b])
    queue_diff = (a['head.queue'][order_a] - b['head.queue'][order_b]).abs().max().item()
    assert queue_diff < 1e-5, queue_diff
    # training did happen where it should: the head phase moves the projector only, then the
    # encoder's unfrozen blocks move too; the frozen embeddings and block 0 never
    for ckpt in (one, two):
        changed = {k for k in weights if not torch.equal(ckpt[1][k], ckpt[2][k])}
        assert changed and all(k.startswith(('neck.', 'head.')) for k in changed), changed
        assert 'neck.fc0.weight' in changed and 'head.predictor.fc1.weight' in changed
        changed = {k for k in weights if not torch.equal(ckpt[2][k], ckpt[4][k])}
        for k in weights:
            if k.startswith(('backbone.layers.1.', 'backbone.layers.3.', 'backbone.norm.')):
                assert k in changed, k
            if k.startswith(('backbone.patch_embed.', 'backbone.layers.0.', 'backbone.cls_')):
                assert k not in changed and torch.equal(ckpt[1][k], ckpt[4][k]), k


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


@pytest.mark.slow
def test_dist_test_untrained_matches_one_process(tmp_path, synthetic_root):
    """tools/dist_test.sh CONFIG none N initialises the model inside its DDP wrapper (and the
    same weights on every rank): the metrics of two gloo processes equal one process's."""
    config = 'configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py'
    opts = ['--seed', '0', '--cfg-options', 'model.backbone.init_cfg=None',
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
    assert all(math.isfinite(v) and 0 <= v <= 100 for v in metrics['one'].values()), metrics


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
