"""tools/benchmark.py options that reach the stages: --data-root (the synthetic configs read
LOMAR_DATA_ROOT, which the suite sets for every stage) and --cfg-options (also for the MAE-CT
evaluation, tools/feature_eval.py)."""
import json
import os
import subprocess
import sys

from conftest import REPO
from lomar_transfer.cli import benchmark as cli
from lomar_transfer.cli import feature_eval


def test_data_root_outside_the_working_directory(tmp_path, synthetic_root):
    cwd = tmp_path / 'elsewhere'  # no data/ here: the stage must read --data-root
    cwd.mkdir()
    cmd = [sys.executable, str(REPO / 'tools/benchmark.py'), '--methods', 'mae', '--stages',
           'pretrain', '--data-root', str(synthetic_root), '--work-dir', 'wd', '--cfg-options',
           'train_cfg.max_iters=1', 'train_dataloader.batch_size=8']
    env = {k: v for k, v in os.environ.items() if k != 'LOMAR_DATA_ROOT'}
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert not (cwd / 'data').exists()  # the data was not made again in the working directory
    stage = cwd / 'wd/mae/pretrain'
    assert json.loads((stage / 'result.json').read_text())['checkpoint'].endswith('iter_1.pth')
    config = next(stage.glob('*/vis_data/config.py')).read_text()
    assert f"data_root='{synthetic_root}/imagenet'" in config


def test_cfg_options_reach_the_maect_evaluation(tmp_path):
    suite = cli.Suite(cli.parse_args(['--methods', 'mae', '--stages', 'maect', '--gpus', '0',
                                      '--cfg-options', 'default_hooks.logger.interval=1']))
    options = ['default_hooks.logger.interval=1', 'model.backbone.pretrained=p.pth']
    cmd = suite.eval_cmd('mae', 'maect', 'c.py', 'ckpt.pth', tmp_path, tmp_path / 'm.json',
                         options, 0)
    assert cmd[1:3] == ['-m', 'lomar_transfer.cli.feature_eval']
    assert cmd[3].endswith('configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py')
    assert cmd[4] == 'ckpt.pth'  # the checkpoint argument, not the option, sets the weights
    assert cmd[cmd.index('--cfg-options') + 1:] == ['default_hooks.logger.interval=1']
    # the other stages: tools/test.py, with every option
    cmd = suite.eval_cmd('mae', 'ade', 'c.py', 'ckpt.pth', tmp_path, tmp_path / 'm.json',
                         options, 0)
    assert cmd[cmd.index('--cfg-options') + 1:] == options


def test_feature_eval_applies_cfg_options(tmp_path, synthetic_root, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/synthetic here: only the options point at the data
    out = tmp_path / 'metrics.json'
    root = f'{synthetic_root}/imagenet'
    feature_eval.main([str(REPO / 'configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py'), '',
                       '--low-shot', '1', '--out', str(out), '--cfg-options',
                       f'train_dataloader.dataset.data_root={root}',
                       f'test_dataloader.dataset.data_root={root}'])
    metrics = json.loads(out.read_text())
    assert set(metrics) == {'knn/top1', 'linear/top1', 'cluster/acc', 'cluster/nmi',
                            'lowshot1/top1'}
