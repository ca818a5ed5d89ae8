"""A dry run of the paper profile: every stage's own paper config, shortened, on the user's data.

A stage's dry config is its paper config with only these changed (each listed in the report):
the iteration count (an epoch-based loop runs one epoch of a subset that makes it that long), the
data (a subset; ``data/`` paths moved under ``--data-root``), the batch per device, AMP off
without CUDA, loader workers capped by the CPU count, a log line per iteration and no
validation while training. The suite then trains it, hands its checkpoint on as a full run does,
evaluates it with the stage's stock evaluator on a few validation images, and projects the full
schedule's cost from the measured step.
"""
import json
import math
import os
import re
from pathlib import Path

from mmengine.config import Config, DictAction

from .datasets.checks import (DataError, _datasets, annotation_list, check_dataset,
                              dataset_kind)

# training images of the real datasets: the length of an epoch in the full schedule
FULL_TRAIN_IMAGES = {'CocoDataset': 118287, 'ADE20KDataset': 20210, 'ImageNet': 1281167}
EXPECTED_CLASSES = {'CocoDataset': 80, 'ADE20KDataset': 150, 'ImageNet': 1000}
PREPARE = {
    'CocoDataset': 'download COCO 2017 (train2017, val2017, annotations_trainval2017) and '
                   'unpack it as DATA/coco/{train2017,val2017,annotations}',
    'ADE20KDataset': 'download ADEChallengeData2016.zip and unpack it as '
                     'DATA/ade/ADEChallengeData2016/{images,annotations}/{training,validation}',
    'ImageNet': 'put ILSVRC-2012 under DATA/imagenet as train/<wnid>/*.JPEG, val/ and '
                'meta/{train,val}.txt (mmpretrain\'s layout: docs "Prepare ImageNet")',
}
STAND_IN = ('or check the run on the embedded stand-in: lomar-make-data --out DIR, then '
            '--data-root DIR')
PEAK_MEMORY_VAR = 'LOMAR_PEAK_MEMORY'  # lomar-train writes its peak memory there (JSON)


def parse_options(options):
    """``k=v`` strings as ``--cfg-options`` parses them."""
    out = {}
    for item in options:
        key, _, value = item.partition('=')
        out[key] = DictAction._parse_iterable(value)
    return out


def _loaders(cfg):
    return [n for n in ('train_dataloader', 'val_dataloader', 'test_dataloader') if cfg.get(n)]


def move_data_root(node, data_root):
    """Every ``data/...`` path of ``data_root`` / ``ann_file`` keys, under ``data_root``."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ('data_root', 'ann_file') and isinstance(v, str) and v.startswith('data/'):
                node[k] = f"{str(data_root).rstrip('/')}/{v[len('data/'):]}"
            else:
                move_data_root(v, data_root)
    elif isinstance(node, (list, tuple)):
        for v in node:
            move_data_root(v, data_root)


def full_schedule(cfg, gpus):
    """(iterations, total batch) of the config's full schedule on its recipe's ``gpus``."""
    loader = cfg.train_dataloader
    total = loader.batch_size * gpus
    loop = cfg.train_cfg
    if 'max_iters' in loop:
        return loop.max_iters, total
    ds = loader.dataset
    repeat = 1
    while 'dataset' in ds:
        repeat *= ds.get('times', 1)
        ds = ds.dataset
    images = FULL_TRAIN_IMAGES.get(dataset_kind(ds))
    if images is None:
        return None, total
    return loop.max_epochs * math.ceil(images * repeat / total), total


def dry_config(path, options, iters, images, batch, gpus, data_root=None, cuda=False):
    """The stage's paper config with the dry run's changes; returns (cfg, changes, the paper
    config's full schedule on its recipe's ``gpus``)."""
    cfg = Config.fromfile(str(path))
    cfg.merge_from_dict(parse_options(options))
    full = full_schedule(cfg, gpus)
    changes = []

    def change(key, old, new):
        if old != new:
            changes.append(f'{key}: {old} -> {new}')

    if data_root:
        move_data_root(cfg._cfg_dict, data_root)  # (also the evaluators' ann_file)
        changes.append(f'data/ -> {data_root}/')
    loader = cfg.train_dataloader
    per_device = min(loader.batch_size, batch)
    change('train batch per device', loader.batch_size, per_device)
    loader.batch_size = per_device
    loop = cfg.train_cfg
    if 'max_iters' in loop:
        change('train_cfg.max_iters', loop.max_iters, iters)
        loop.max_iters = iters
        train_images = None  # the loader cycles through whatever it has
    else:  # one epoch of exactly `iters` iterations
        change('train_cfg.max_epochs', loop.max_epochs, 1)
        loop.max_epochs = 1
        train_images = iters * per_device
    loop.val_interval = 10 ** 9
    for name in _loaders(cfg):
        ld = cfg[name]
        n = train_images if name == 'train_dataloader' else images
        for ds in _datasets(ld.dataset):
            if n is not None:
                ds.indices = n
        if n is not None:
            change(f'{name} images', 'all', n)
        workers = min(ld.get('num_workers', 0), os.cpu_count() or 1)
        change(f'{name}.num_workers', ld.get('num_workers', 0), workers)
        ld.num_workers = workers
        ld.persistent_workers = workers > 0 and ld.get('persistent_workers', False)
        if name != 'train_dataloader':
            ld.batch_size = 1
    wrapper = cfg.optim_wrapper
    if wrapper.get('type') == 'AmpOptimWrapper' and not cuda:
        change('optim_wrapper.type', 'AmpOptimWrapper', 'OptimWrapper')
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)
        wrapper.type = 'OptimWrapper'
    cfg.default_hooks.logger = dict(cfg.default_hooks.get('logger') or {}, type='LoggerHook',
                                    interval=1)
    cfg.default_hooks.checkpoint.pop('max_keep_ckpts', None)
    cfg.auto_scale_lr = dict(cfg.get('auto_scale_lr') or {}, enable=False)
    return cfg, changes, full


def count_data(ds):
    """(images, classes listed, classes the protocol expects) of one dataset on disk."""
    root = ds.get('data_root', '')
    kind = dataset_kind(ds)

    def at(p):
        return Path(root) / p if root and not os.path.isabs(p) else Path(p)

    if kind == 'CocoDataset':
        coco = json.loads(at(ds.ann_file).read_text())
        return len(coco['images']), len(coco['categories']), 80
    if kind == 'ADE20KDataset':
        img_dir = at((ds.get('data_prefix') or {}).get('img_path', ''))
        return sum(1 for p in img_dir.iterdir() if p.is_file()), 150, 150
    if kind == 'ImageNet':
        split, ann = ds.get('split'), annotation_list(ds)
        if ann and at(ann).is_file():
            lines = at(ann).read_text().split('\n')
            return sum(1 for line in lines if line.strip()), 1000, 1000
        folder = at(ds.get('data_prefix') or split or '')
        classes = [d for d in folder.iterdir() if d.is_dir()] if folder.is_dir() else []
        return sum(len(list(d.iterdir())) for d in classes), len(classes), 1000
    return None, None, EXPECTED_CLASSES.get(kind)


def data_report(cfg):
    """({loader: (images, classes, expected)}, {problem: fix}) of the config's datasets; a
    problem is named once for the train, val and test loaders that share it."""
    found, problems = {}, {}
    for name in _loaders(cfg):
        for ds in _datasets(cfg[name].dataset):
            try:
                check_dataset(ds, 'dataset')
                images, classes, expected = count_data(ds)
            except (DataError, OSError, ValueError, KeyError) as e:
                text = str(e).split('. Make the embedded data')[0].split('; point data_root')[0]
                problems[text] = f'{PREPARE.get(dataset_kind(ds), "fix data_root")}; {STAND_IN}'
                continue
            if classes is not None and classes != expected:
                problems[f'{ds.get("data_root")}: {classes} classes listed where the protocol '
                         f'expects {expected}'] = 'a subset or another dataset: use the full one'
            found[name] = (images, classes, expected)
    return found, problems


LOADED = re.compile(r'loaded (\d+)/(\d+) backbone tensors from (\S+)')
LOSS = re.compile(r'\sloss: ([-\d.e+]+|nan|inf)')
STEP = re.compile(r'\stime: ([\d.]+)')


def parse_train_log(text):
    """What a training log says: the backbone load, the losses and the seconds per step."""
    m = LOADED.search(text)
    train = [line for line in text.splitlines() if '(train)' in line]
    losses = [float(x) for line in train for x in LOSS.findall(line)]
    steps = [float(x) for line in train for x in STEP.findall(line)]
    timed = sorted(steps[1:] or steps)  # the first step also warms up, when there are others
    return dict(loaded=(int(m[1]), int(m[2]), m[3]) if m else None, losses=losses,
                seconds_per_iter=timed[len(timed) // 2] if timed else None)


def project(seconds_per_iter, dry_batch, full_iters, total_batch, devices):
    """Hours and device-hours of the full schedule: the measured step scaled linearly from the
    dry batch per device to the recipe's total batch spread over ``devices``."""
    if not (seconds_per_iter and full_iters):
        return None, None
    per_iter = seconds_per_iter * (total_batch / devices) / dry_batch
    hours = full_iters * per_iter / 3600
    return hours, hours * devices


def _fmt_hours(h):
    if h is None:
        return '-'
    return f'{h:.1f} h' if h < 48 else f'{h / 24:.1f} d'


def format_table(rows, devices, where):
    head = ('| method | stage | train / val images | classes (expected) | checkpoint loaded | '
            'loss | metric | s/iter | peak memory | full schedule | device-hours |\n'
            '|---|---|---|---|---|---|---|---|---|---|---|')
    lines = [head]
    for r in rows:
        data = r.get('data', {})
        tr, va = data.get('train_dataloader'), data.get('test_dataloader') or data.get(
            'val_dataloader')
        images = f'{tr[0] if tr else "-"} / {va[0] if va else "-"}'
        cls = next((f'{d[1]} ({d[2]})' for d in (tr, va) if d and d[1] is not None), '-')
        loaded = r.get('loaded')
        lines.append('| ' + ' | '.join([
            r['method'], r['stage'], images, cls,
            f'{loaded[0]}/{loaded[1]}' if loaded else r.get('weights', '-'),
            r.get('loss', '-'), r.get('metric', '-'),
            f'{r["seconds_per_iter"]:.2f}' if r.get('seconds_per_iter') else '-',
            f'{r["peak_mb"]:.0f} MB' if r.get('peak_mb') else '-',
            _fmt_hours(r.get('hours')), _fmt_hours(r.get('device_hours'))]) + ' |')
    lines.append(f'\nFull schedule: the recipe\'s iterations at its total batch on {devices} '
                 f'{where}, from the measured step scaled linearly with the batch per device.')
    return '\n'.join(lines)
