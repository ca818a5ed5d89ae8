"""Train from an OpenMMLab config (mmpretrain, mmdet or mmseg) with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse
import os

from mmengine.config import DictAction
from mmengine.runner import Runner

from lomar_transfer.datasets.checks import DataError, check_data
from lomar_transfer.engine import NonFiniteLossError
from lomar_transfer.utils import add_safety_hooks, load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model from a config')
    parser.add_argument('config')
    parser.add_argument('--work-dir', help='default: work_dirs/<config name>')
    parser.add_argument('--resume', action='store_true', help='resume from the last checkpoint')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. train_cfg.max_iters=10')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.resume = args.resume
    try:
        check_data(cfg, ('train_dataloader', 'val_dataloader'))
    except DataError as e:
        raise SystemExit(f'error: {e}')
    add_safety_hooks(cfg)  # atomic checkpoints, exact resume, stop on NaN / inf loss
    os.makedirs(cfg.work_dir, exist_ok=True)
    try:
        Runner.from_cfg(cfg).train()
    except NonFiniteLossError as e:
        raise SystemExit(f'error: {e}')


if __name__ == '__main__':
    main()
