"""Label-efficient evaluation of a backbone's frozen features: k-NN, linear probe, low-shot
linear probe (N images per class) and clustering accuracy (k-means + Hungarian matching).

    python tools/feature_eval.py CONFIG CHECKPOINT [--k 20] [--low-shot 1 5]
        [--low-shot-percent 1 10] [--out metrics.json]

CONFIG is a classification config (e.g. configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py):
its backbone and data are used, with the test pipeline for both splits. CHECKPOINT is any
checkpoint the backbone loads (pretraining, MAE-CT tuning, converted releases).
"""
import argparse
import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from lomar_transfer.evaluation import (clustering_accuracy, extract_features,  # noqa: E402
                                       knn_accuracy, linear_probe_accuracy, low_shot_indices)
from lomar_transfer.utils import load_config  # noqa: E402


def evaluate(config, checkpoint, k=20, low_shot=(1, 5), low_shot_percent=(), cfg_options=None):
    cfg = load_config(config, cfg_options)
    cfg.model.backbone.pretrained = checkpoint
    cfg.model.backbone.frozen_stages = -1
    train = copy.deepcopy(cfg.test_dataloader)
    train.dataset.ann_file = cfg.train_dataloader.dataset.get('ann_file', '')
    train.dataset.data_prefix = cfg.train_dataloader.dataset.get('data_prefix', '')
    train.dataset.data_root = cfg.train_dataloader.dataset.data_root
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)
        model.init_weights()
        train_f, train_y = extract_features(model.backbone, Runner.build_dataloader(train),
                                            model.data_preprocessor)
        test_f, test_y = extract_features(model.backbone,
                                          Runner.build_dataloader(cfg.test_dataloader),
                                          model.data_preprocessor)
    res = {'knn/top1': knn_accuracy(train_f, train_y, test_f, test_y, k=k),
           'linear/top1': linear_probe_accuracy(train_f, train_y, test_f, test_y),
           'cluster/acc': clustering_accuracy(test_f, test_y)}
    subsets = {f'lowshot{n}/top1': dict(per_class=n) for n in low_shot}
    subsets.update({f'lowshot{pct:g}%/top1': dict(fraction=pct / 100)
                    for pct in low_shot_percent})
    for key, subset in subsets.items():
        ids = low_shot_indices(train_y, **subset)
        res[key] = linear_probe_accuracy(train_f[ids], train_y[ids], test_f, test_y)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--k', type=int, default=20)
    p.add_argument('--low-shot', nargs='*', type=int, default=[1, 5],
                   help='low-shot probes with this many train images per class')
    p.add_argument('--low-shot-percent', nargs='*', type=float, default=[],
                   help='low-shot probes on this percentage of each class (e.g. 1 10)')
    p.add_argument('--out')
    args = p.parse_args()
    torch.manual_seed(0)
    res = evaluate(args.config, args.checkpoint, args.k, args.low_shot, args.low_shot_percent)
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
