"""Check a config's datasets on disk before a run starts, so that bad input ends in one error
that names the cause and the fix, not in a traceback minutes into training.

Covers the datasets the suite uses (mmdet ``CocoDataset``, mmseg ADE20K / segmentation datasets,
mmpretrain ``ImageNet`` / ``CustomDataset``); others are only checked for their ``data_root``.
"""
import json
import os
import os.path as osp
from pathlib import Path

import numpy as np

from ..errors import UserError

MAKE_DATA = ('lomar-make-data --out data/synthetic (python tools/make_synthetic_data.py in a '
             'clone of the repository)')
# where each embedded dataset lies under lomar-make-data's --out
LAYOUT = ('imagenet', 'coco', 'ade/ADEChallengeData2016')


def make_data(data_root):
    """How to get data where ``data_root`` points: the data tool's command for that very path
    when it has the embedded layout, and how to point the configs at a copy made elsewhere."""
    path = str(data_root or '').rstrip('/')
    out = next((path[:-len(t)].rstrip('/') or '.' for t in LAYOUT
                if path == t or path.endswith('/' + t)), None)
    if out is None:
        return MAKE_DATA
    return (f'lomar-make-data --out {out} (python tools/make_synthetic_data.py in a clone of the '
            'repository); for data made elsewhere set LOMAR_DATA_ROOT=DIR (the synthetic '
            'configs read it) or lomar-benchmark --data-root DIR')
LABEL_SAMPLE = 200  # segmentation label maps whose values are checked up front


class DataError(UserError, ValueError):
    """Bad input data; ``tools/train.py`` / ``tools/test.py`` exit with its message."""


def _datasets(cfg_dataset):
    """The leaf dataset configs inside wrappers (RepeatDataset, ConcatDataset, ...)."""
    if cfg_dataset is None:
        return []
    if 'datasets' in cfg_dataset:
        return [d for sub in cfg_dataset['datasets'] for d in _datasets(sub)]
    if 'dataset' in cfg_dataset:
        return _datasets(cfg_dataset['dataset'])
    return [cfg_dataset]


def _join(root, path):
    return path if not root or osp.isabs(path) else osp.join(root, path)


def check_coco(ds, where):
    root = ds.get('data_root', '')
    ann = _join(root, ds.get('ann_file', ''))
    if not osp.isfile(ann):
        raise DataError(f'{where}: COCO annotation file {ann} not found. Point data_root / '
                        f'ann_file at your COCO copy, or make the embedded data: '
                        f'{make_data(root)}')
    try:
        coco = json.loads(Path(ann).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f'{where}: {ann} is not valid JSON ({e}); the file is corrupt or '
                        'truncated: download or generate it again') from None
    missing = [k for k in ('images', 'annotations', 'categories') if k not in coco] \
        if isinstance(coco, dict) else None  # (a list, null or number: no object at all)
    if missing != []:
        raise DataError(f'{where}: {ann} is not a COCO instances file: it lacks '
                        f'{missing or "a top-level object"} (expected images, annotations, '
                        'categories, as in instances_train2017.json)')
    img_dir = _join(root, (ds.get('data_prefix') or {}).get('img', ''))
    absent = [im['file_name'] for im in coco['images']
              if not osp.isfile(osp.join(img_dir, im['file_name']))]
    if absent:
        raise DataError(f'{where}: {len(absent)} of {len(coco["images"])} images listed in '
                        f'{ann} are missing from {img_dir} (e.g. {absent[:3]}); fix data_prefix '
                        'or complete the image folder')


def check_segmentation(ds, where, num_classes):
    root = ds.get('data_root', '')
    prefix = ds.get('data_prefix') or {}
    img_dir = _join(root, prefix.get('img_path', ''))
    seg_dir = _join(root, prefix.get('seg_map_path', ''))
    for kind, d in (('images', img_dir), ('label maps', seg_dir)):
        if not osp.isdir(d) or not any(Path(d).iterdir()):
            raise DataError(f'{where}: no {kind} in {d}; point data_root at an '
                            f'ADEChallengeData2016-style folder, or make the embedded data: '
                            f'{make_data(root)}')
    reduce_zero = ds.get('reduce_zero_label', True)
    top = num_classes if reduce_zero else num_classes - 1  # 0 = "other" when reduced
    import cv2
    for png in sorted(Path(seg_dir).glob('*.png'))[:LABEL_SAMPLE]:
        label = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if label is None:
            if where.startswith('train'):
                continue  # training skips it and lists it in bad_samples.txt (bad_samples.py)
            raise DataError(f'{where}: label map {png} cannot be read (corrupt file)')
        bad = np.unique(label[(label > top) & (label != 255)])
        if bad.size:
            raise DataError(f'{where}: label map {png} has values {bad[:5].tolist()} outside '
                            f'0..{top} (and 255 = ignore) for {num_classes} classes; the file '
                            'is corrupt or belongs to another dataset')


def _class_folders(folder):
    return sum(e.is_dir() for e in os.scandir(folder)) if osp.isdir(folder) else 0


def dataset_kind(ds):
    """A dataset config's class name, without its registry scope."""
    return str(ds.get('type', '')).split('.')[-1]


def annotation_list(ds):
    """The list file an mmpretrain dataset reads: ``ann_file``, else (ImageNet with a split)
    ``meta/<split>.txt``, else '' (a folder per class)."""
    split = ds.get('split') if dataset_kind(ds) == 'ImageNet' else None
    return ds.get('ann_file') or (f'meta/{split}.txt' if split else '')


def check_classification(ds, where):
    root = ds.get('data_root', '')
    ann = annotation_list(ds)
    split = ds.get('split') if dataset_kind(ds) == 'ImageNet' else None
    if not ds.get('ann_file') and split:  # mmpretrain's ImageNet reads meta/<split>.txt, and
        # only without it scans the split's folder: one subfolder per class, all
        prefix = ds.get('data_prefix') or split
        prefix = prefix.get('img_path', '') if isinstance(prefix, dict) else prefix
        classes = len((ds.get('metainfo') or {}).get('classes', ())) or 1000
        if not osp.isfile(_join(root, ann)) and _class_folders(_join(root, prefix)) == classes:
            return
    if ann and not osp.isfile(_join(root, ann)):
        raise DataError(f'{where}: annotation list {_join(root, ann)} not found (expected '
                        f'lines "relative/path label"); fix ann_file or make the embedded data: '
                        f'{make_data(root)}')


def check_dataset(ds, where):
    root = ds.get('data_root')
    if root and (not osp.isdir(root) or not any(Path(root).iterdir())):
        raise DataError(
            f'{where}: data_root {root!r} does not exist or is empty. Make the embedded data '
            f'({make_data(root)}) or set {where}.data_root to your copy of the dataset')
    kind = dataset_kind(ds)
    if kind == 'CocoDataset':
        check_coco(ds, where)
    elif kind in ('ADE20KDataset', 'BaseSegDataset'):
        check_segmentation(ds, where, 150 if kind == 'ADE20KDataset' else len(
            (ds.get('metainfo') or {}).get('classes', ())) or 256)
    elif kind in ('ImageNet', 'CustomDataset'):
        check_classification(ds, where)


def check_data(cfg, loaders=('train_dataloader', 'val_dataloader', 'test_dataloader')):
    """Check every dataset of the given dataloaders; raises :class:`DataError`."""
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for ds in _datasets(loader.get('dataset')):
            check_dataset(ds, f'{name}.dataset')
