"""Interruption and bad input: exact resume after SIGKILL, checkpoints that survive a kill
during saving, a stop on NaN losses, and one clear error (non-zero exit) per kind of bad input."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO
from lomar_transfer.datasets.checks import DataError, check_data
from lomar_transfer.utils import load_config

PRETRAIN = 'configs/mae/mae_vit-tiny-p8_synthetic.py'
TRANSFER = 'configs/mae/upernet_vit-tiny-p8_synthetic-ade20k.py'


def write_config(tmp_path, base, body, name='cfg.py'):
    path = tmp_path / name
    path.write_text(f"_base_ = '{REPO / base}'\n{body}")
    return path


def short_run_config(tmp_path, kind, root):
    """6 iterations, a checkpoint every 2 (the last kept), random augmentation / masking on."""
    if kind == 'pretrain':
        body = (f"train_dataloader = dict(batch_size=8, dataset=dict(data_root='{root}/imagenet'))"
                "\nparam_scheduler = [dict(type='CosineAnnealingLR', T_max=6, by_epoch=False)]")
        base = PRETRAIN
    else:
        data = f'{root}/ade/ADEChallengeData2016'
        body = (f"train_dataloader = dict(dataset=dict(data_root='{data}'))\n"
                "model = dict(backbone=dict(init_cfg=None))\n"
                "val_cfg = val_dataloader = val_evaluator = None\n"
                "param_scheduler = [dict(type='PolyLR', power=1., by_epoch=False, end=6)]")
        base = TRANSFER
    body += ("\ntrain_cfg = dict(max_iters=6)\n"
             "default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=1), "
             "logger=dict(interval=1))\nrandomness = dict(seed=3)\n")
    return write_config(tmp_path, base, body, f'{kind}.py')


def train_cmd(config, work_dir, *extra):
    return [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir), *extra]


def run(cmd):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


@pytest.mark.parametrize('kind', ['pretrain', 'transfer'])
@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(kind, synthetic_root, tmp_path):
    config = short_run_config(tmp_path, kind, synthetic_root)
    ref = run(train_cmd(config, tmp_path / 'ref'))
    assert ref.returncode == 0, ref.stderr[-3000:]

    # kill -9 at a random iteration after the first checkpoint
    kill_at = random.Random().choice([3, 4, 5])
    work = tmp_path / 'killed'
    proc = subprocess.Popen(train_cmd(config, work), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if f'Iter(train) [{kill_at}/6]' in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f'the run ended before iteration {kill_at}'
    assert not (work / 'iter_6.pth').exists()
    resumed = run(train_cmd(config, work, '--resume'))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed' in resumed.stdout + resumed.stderr  # mmengine: "resumed epoch: 0, iter: N"

    a = torch.load(tmp_path / 'ref/iter_6.pth', weights_only=False)
    b = torch.load(work / 'iter_6.pth', weights_only=False)
    assert a['state_dict'].keys() == b['state_dict'].keys()
    differ = [k for k in a['state_dict'] if not torch.equal(a['state_dict'][k],
                                                            b['state_dict'][k])]
    assert not differ, f'killed at {kill_at}: {len(differ)} tensors differ, e.g. {differ[:3]}'


@pytest.mark.slow
def test_kill_while_saving_keeps_the_last_good_checkpoint(synthetic_root, tmp_path):
    config = short_run_config(tmp_path, 'pretrain', synthetic_root)
    # a process killed while writing its second checkpoint (iteration 4)
    crash = tmp_path / 'crash_in_save.py'
    crash.write_text(
        "import os, sys, runpy\n"
        "real = os.fsync\n"
        "def fsync(fd):\n"
        "    if 'iter_4.pth' in os.readlink(f'/proc/self/fd/{fd}'):  # half-way through\n"
        "        os._exit(137)\n"
        "    real(fd)\n"
        "os.fsync = fsync\n"
        f"sys.argv = {train_cmd(config, tmp_path / 'w')[1:]!r}\n"
        "runpy.run_path('tools/train.py', run_name='__main__')\n")
    out = run([sys.executable, str(crash)])
    assert out.returncode == 137, out.stderr[-2000:]
    work = tmp_path / 'w'
    last = (work / 'last_checkpoint').read_text().strip()
    assert last.endswith('iter_2.pth')
    ckpt = torch.load(last, weights_only=False)  # complete, even with max_keep_ckpts=1
    assert ckpt['meta']['iter'] == 2 and 'rng_states' in ckpt
    assert not (work / 'iter_4.pth').exists()
    resumed = run(train_cmd(config, work, '--resume'))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_6.pth')
    assert sorted(p.name for p in work.glob('iter_*.pth')) == ['iter_6.pth']


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(synthetic_root, tmp_path):
    hook = tmp_path / 'nan_after.py'
    hook.write_text(
        "import torch\nfrom mmengine.hooks import Hook\nfrom mmengine.registry import HOOKS\n"
        "@HOOKS.register_module()\nclass NaNWeightsAt(Hook):\n"
        "    def before_train_iter(self, runner, batch_idx, data_batch=None):\n"
        "        if runner.iter == 2:  # the third iteration\n"
        "            with torch.no_grad():\n"
        "                next(runner.model.parameters()).fill_(float('nan'))\n")
    config = short_run_config(tmp_path, 'pretrain', synthetic_root)
    config.write_text(config.read_text() + "custom_imports = dict(imports=['lomar_transfer', "
                      "'nan_after'])\ncustom_hooks = [dict(type='NaNWeightsAt')]\n")
    out = subprocess.run(train_cmd(config, tmp_path / 'w'), cwd=REPO, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert out.returncode != 0
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith('error: the training loss became nan at iteration 3')
    assert 'iter_2.pth' in message and '--resume' in message
    assert sorted(p.name for p in (tmp_path / 'w').glob('iter_*.pth')) == ['iter_2.pth']


# ------------------------------------------------------------------------------- bad input
def copy_data(synthetic_root, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(synthetic_root / name, dst)
    return dst


def coco_cfg(root):
    cfg = load_config(str(REPO / 'configs/mae/mask-rcnn_vit-tiny-p8_synthetic-coco.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = f'{root}/'
    return cfg


@pytest.mark.slow
def test_missing_data_root_exits_with_the_fix(tmp_path):
    out = run(train_cmd(REPO / TRANSFER, tmp_path / 'w', '--cfg-options',
                        f'train_dataloader.dataset.data_root={tmp_path}/nowhere'))
    assert out.returncode != 0
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith('error: train_dataloader.dataset: data_root') and \
        'nowhere' in message and 'does not exist or is empty' in message
    assert 'tools/make_synthetic_data.py' in message
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match='does not exist or is empty'):
        check_data(coco_cfg(tmp_path / 'empty'))


def test_broken_coco_json_is_named(synthetic_root, tmp_path):
    root = copy_data(synthetic_root, tmp_path, 'coco')
    ann = root / 'annotations/instances_train2017.json'
    good = ann.read_text()
    ann.write_text(good[:len(good) // 2])  # truncated download
    with pytest.raises(DataError, match='instances_train2017.json is not valid JSON'):
        check_data(coco_cfg(root))
    data = json.loads(good)
    ann.write_text(json.dumps({k: v for k, v in data.items() if k != 'annotations'}))
    with pytest.raises(DataError, match=r"lacks \['annotations'\]"):
        check_data(coco_cfg(root))
    ann.write_text(good)
    (root / 'train2017' / data['images'][1]['file_name']).unlink()
    with pytest.raises(DataError, match=r'1 of \d+ images listed .* are missing'):
        check_data(coco_cfg(root))


def test_ade_label_out_of_range_is_named(synthetic_root, tmp_path):
    root = copy_data(synthetic_root, tmp_path, 'ade')
    labels = sorted((root / 'ADEChallengeData2016/annotations/training').glob('*.png'))
    cv2.imwrite(str(labels[0]), np.full((32, 32), 200, np.uint8))
    cfg = load_config(str(REPO / TRANSFER))
    cfg.train_dataloader.dataset.data_root = str(root / 'ADEChallengeData2016')
    with pytest.raises(DataError, match=f'{labels[0].name} has values \\[200\\] outside 0..150'):
        check_data(cfg, ('train_dataloader', ))


# a corrupt image met in training or evaluation: tests/test_bad_samples.py


def test_unknown_cfg_option_is_refused_with_suggestions():
    with pytest.raises(SystemExit, match="has no key 'trian_cfg'; did you mean 'train_cfg'"):
        load_config(str(REPO / TRANSFER), {'trian_cfg.max_iters': 3})
    with pytest.raises(SystemExit, match="model.decode_head has no key 'chanels'"):
        load_config(str(REPO / TRANSFER), {'model.decode_head.chanels.x': 3})
    # a new argument of a registered component is the component's to check
    cfg = load_config(str(REPO / TRANSFER), {'model.backbone.with_cp': True})
    assert cfg.model.backbone.with_cp is True


@pytest.mark.parametrize('option, line', [
    ('train_cfg.max_iter=4', "IterBasedTrainLoop takes no argument 'max_iter'; did you mean "
     "'max_iters'?"),
    ('optim_wrapper.optimizer.lrr=1e-3', "AdamW takes no argument 'lrr'; did you mean 'lr'?"),
])
@pytest.mark.slow
def test_unknown_argument_of_a_typed_component_is_one_line(synthetic_root, tmp_path, option,
                                                           line):
    """New keys inside a component pass the config check (the class may take them); the class
    refusing one ends like a key the config lacks, not in a traceback."""
    config = short_run_config(tmp_path, 'pretrain', synthetic_root)
    out = run(train_cmd(config, tmp_path / 'w', '--cfg-options', option))
    assert out.returncode == 1
    key = option.split('=')[0]
    assert out.stderr.strip().splitlines()[-1] == f'error: --cfg-options {key}: {line}'
    assert 'Traceback' not in out.stderr


def test_mask_ratio_outside_unit_interval_is_refused():
    from lomar_transfer.models import LoMaRViT, MAEPretrainViT
    tiny = dict(arch=dict(embed_dims=32, depth=1, num_heads=2, mlp_hidden_dims=64),
                patch_size=8, img_size=32)
    for cls in (LoMaRViT, MAEPretrainViT):
        for ratio in (0., 1., 1.5):
            with pytest.raises(ValueError, match='mask_ratio'):
                cls(mask_ratio=ratio, **tiny)


@pytest.mark.slow
def test_converter_never_runs_code_from_a_checkpoint(tmp_path):
    marker = tmp_path / 'pwned'

    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    torch.save({'state_dict': {'blocks.0.norm1.weight': torch.ones(2)}, 'x': Evil()},
               tmp_path / 'evil.pth')
    out = run([sys.executable, 'tools/model_converters/to_lomar_vit.py',
               str(tmp_path / 'evil.pth'), str(tmp_path / 'out.pth')])
    assert out.returncode != 0 and 'posix.system' in out.stderr + out.stdout
    assert not marker.exists() and not Path(tmp_path / 'out.pth').exists()


def test_missing_config_is_one_line_with_the_closest_names(tmp_path):
    from lomar_transfer.errors import UserError
    with pytest.raises(UserError, match=r'config file not found: .*mae_vit-tiny-p8_synthtic\.py; '
                       r'did you mean .*configs/mae/mae_vit-tiny-p8_synthetic\.py'):
        load_config(str(REPO / 'configs/mae/mae_vit-tiny-p8_synthtic.py'))


@pytest.mark.slow
def test_a_run_shorter_than_the_log_interval_still_logs_its_loss(synthetic_root, tmp_path):
    config = short_run_config(tmp_path, 'pretrain', synthetic_root)
    out = run(train_cmd(config, tmp_path / 'w', '--cfg-options', 'train_cfg.max_iters=3',
                        'default_hooks.logger.interval=10'))
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r'Iter\(train\) \[3/3\]  loss: [\d.]+  \(the last iteration; the logger '
                     r'logs every 10\)', out.stdout + out.stderr)
