"""Evaluate a checkpoint with the config's test dataloader and evaluator.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json] [--cfg-options ...]

Prints the metrics (coco/bbox_mAP, coco/segm_mAP, mIoU, accuracy/top1, ...) and optionally writes
them to a JSON file. CHECKPOINT ``none`` evaluates the model as the config initialises it (the
pretrained backbone, untrained heads): the untrained baseline of a transfer config.
"""
import argparse
import json
import os.path as osp

from mmengine.config import DictAction
from mmengine.runner import Runner

from lomar_transfer.datasets.checks import DataError, check_data
from lomar_transfer.utils import load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', help='default: work_dirs/<config name>')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    return parser.parse_args()


def main():
    args = parse_args()
    untrained = args.checkpoint == 'none'
    if not untrained and not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint file not found: {args.checkpoint}')
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = None if untrained else args.checkpoint
    try:
        check_data(cfg, ('test_dataloader', ))
    except DataError as e:
        raise SystemExit(f'error: {e}')
    runner = Runner.from_cfg(cfg)
    if untrained:
        runner.model.init_weights()  # the Runner only initialises weights for training
    metrics = runner.test()
    print(json.dumps(metrics, indent=1))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(metrics, f, indent=1)


if __name__ == '__main__':
    main()
