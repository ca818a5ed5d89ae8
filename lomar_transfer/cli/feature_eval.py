"""Label-efficient evaluation of a backbone's frozen features by MAE-CT's protocol: k-NN
(k = 10, T = 0.07), linear probe (SGD, non-affine BatchNorm, lr sweep), low-shot logistic
regression (published split files, or random N images per class), clustering (ACC, NMI).

    lomar-feature-eval CONFIG CHECKPOINT [--k 10] [--low-shot 1 5]
        [--low-shot-files 1percent.txt ...] [--out metrics.json] [--cfg-options ...]
    tools/dist_feature_eval.sh CONFIG CHECKPOINT NUM_GPUS [args]   # k-NN sharded over ranks

CONFIG is a classification config (e.g. configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py):
its backbone and data are used, with the test pipeline for both splits. CHECKPOINT is any
checkpoint the backbone loads (pretraining, MAE-CT tuning, converted releases). Split files
list train image names, one per line (SimCLRv2 ``1percent.txt``, MSN ``5imgs_class.txt``).
"""
import argparse
import copy
import json
from pathlib import Path

import torch
from mmengine import dist
from mmengine.config import DictAction
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from ..evaluation import (clustering_scores, extract_features, knn_accuracy,
                          linear_probe_accuracy, logistic_regression_accuracy, low_shot_indices,
                          read_split_file, split_indices)
from ..fileio import atomic_write
from ..utils import load_config


def gather_rows(x):
    """Rows of every rank's shard, in rank order (shards may differ by one row)."""
    if dist.get_world_size() == 1:
        return x
    n = torch.tensor(len(x))
    sizes = dist.all_gather(n)
    pad = x.new_zeros(int(max(sizes)) - len(x), *x.shape[1:])
    parts = dist.all_gather(torch.cat([x, pad]))
    return torch.cat([p[:int(s)] for p, s in zip(parts, sizes)])


def evaluate(config, checkpoint, k=10, low_shot=(1, 5), low_shot_percent=(), low_shot_files=(),
             cfg_options=None, launcher='none'):
    cfg = load_config(config, cfg_options, launcher=launcher)
    if launcher != 'none' and not dist.is_distributed():  # GPUs: NCCL through mmengine
        dist.init_dist(launcher)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
    cfg.model.backbone.frozen_stages = -1
    train = copy.deepcopy(cfg.test_dataloader)
    train.dataset.ann_file = cfg.train_dataloader.dataset.get('ann_file', '')
    train.dataset.data_prefix = cfg.train_dataloader.dataset.get('data_prefix', '')
    train.dataset.data_root = cfg.train_dataloader.dataset.data_root
    # each rank extracts a disjoint shard of the train set (no padding duplicates) and the
    # whole test set
    train.sampler = dict(type='DefaultSampler', shuffle=False, round_up=False)
    test = copy.deepcopy(cfg.test_dataloader)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.to(dist.get_comm_device() if dist.is_distributed() else
                 ('cuda' if torch.cuda.is_available() else 'cpu'))
        train_loader = Runner.build_dataloader(train)
        train_f, train_y = extract_features(model.backbone, train_loader,
                                            model.data_preprocessor)
        test_loader = Runner.build_dataloader(test)
        if dist.get_world_size() > 1:  # the whole test set on every rank
            test_loader = torch.utils.data.DataLoader(
                test_loader.dataset, batch_size=test_loader.batch_size,
                collate_fn=test_loader.collate_fn, num_workers=test_loader.num_workers)
        test_f, test_y = extract_features(model.backbone, test_loader, model.data_preprocessor)
    res = {'knn/top1': knn_accuracy(train_f, train_y, test_f, test_y, k=k)}
    # the rest needs the whole train set: on rank 0
    paths = [train_loader.dataset.get_data_info(int(i))['img_path']
             for i in train_loader.sampler]
    train_f, train_y = gather_rows(train_f), gather_rows(train_y)
    paths = sum(dist.all_gather_object(paths), []) if dist.get_world_size() > 1 else paths
    if dist.get_rank() != 0:
        return res
    res['linear/top1'] = linear_probe_accuracy(train_f, train_y, test_f, test_y)
    res['cluster/acc'], res['cluster/nmi'] = clustering_scores(test_f, test_y)
    subsets = {f'lowshot{n}/top1': low_shot_indices(train_y, per_class=n) for n in low_shot}
    subsets.update({f'lowshot{pct:g}%/top1': low_shot_indices(train_y, fraction=pct / 100)
                    for pct in low_shot_percent})
    subsets.update({f'lowshot/{Path(f).stem}/top1': split_indices(paths, read_split_file(f), f)
                    for f in low_shot_files})
    for key, ids in subsets.items():
        res[key] = logistic_regression_accuracy(train_f[ids], train_y[ids], test_f, test_y)
    if len(low_shot_files) > 1:  # MAE-CT reports the mean over the published splits
        accs = [res[f'lowshot/{Path(f).stem}/top1'] for f in low_shot_files]
        res['lowshot/files_mean/top1'] = sum(accs) / len(accs)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--k', type=int, default=10, help='k-NN neighbours (MAE-CT: 10)')
    p.add_argument('--low-shot', nargs='*', type=int, default=[1, 5],
                   help='low-shot on this many random train images per class')
    p.add_argument('--low-shot-percent', nargs='*', type=float, default=[],
                   help='low-shot on this random percentage of each class (e.g. 1 10)')
    p.add_argument('--low-shot-files', nargs='*', default=[],
                   help='published low-shot splits: text files of train image names')
    p.add_argument('--out')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override settings of CONFIG, e.g. test_dataloader.batch_size=8')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    args = p.parse_args(argv)
    for f in args.low_shot_files:
        if not Path(f).is_file():
            p.error(f'--low-shot-files {f}: file not found')
    torch.manual_seed(0)
    res = evaluate(args.config, args.checkpoint, args.k, args.low_shot, args.low_shot_percent,
                   args.low_shot_files, cfg_options=args.cfg_options, launcher=args.launcher)
    if dist.get_rank() == 0:
        print(json.dumps(res, indent=1))
        if args.out:
            atomic_write(args.out, json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
