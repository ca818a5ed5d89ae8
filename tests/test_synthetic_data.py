"""Embedded datasets: real layouts, stock OpenMMLab loaders, evaluators wired right."""
import hashlib

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from pycocotools.coco import COCO

from conftest import REPO, retarget
from lomar_transfer.datasets import synthetic


def tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob('*')):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def dataset_cfg(name, root):
    cfg = Config.fromfile(REPO / f'configs/_base_/datasets/{name}.py')
    retarget(cfg._cfg_dict, 'data/synthetic', str(root))
    return cfg


# --------------------------------------------------------------------------- generator
def test_deterministic_from_seed(tmp_path):
    a = synthetic.make_coco(tmp_path / 'a', seed=3, num_train=3, num_val=2)
    b = synthetic.make_coco(tmp_path / 'b', seed=3, num_train=3, num_val=2)
    c = synthetic.make_coco(tmp_path / 'c', seed=4, num_train=3, num_val=2)
    assert tree_digest(a) == tree_digest(b)
    assert tree_digest(a) != tree_digest(c)


def test_never_destroys_other_data(tmp_path):
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'results.txt').write_text('precious')
    with pytest.raises(FileExistsError, match='not synthetic data'):
        synthetic.make_ade20k(foreign, num_train=1, num_val=1)
    assert (foreign / 'results.txt').read_text() == 'precious'

    root = synthetic.make_imagenet(tmp_path / 'in', num_train_per_class=1, num_val_per_class=1)
    stamp = (root / synthetic.MANIFEST).stat().st_mtime_ns
    synthetic.make_imagenet(root, num_train_per_class=1, num_val_per_class=1)  # same: no-op
    assert (root / synthetic.MANIFEST).stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match='--overwrite'):
        synthetic.make_imagenet(root, num_train_per_class=2, num_val_per_class=1)
    synthetic.make_imagenet(root, num_train_per_class=2, num_val_per_class=1, overwrite=True)
    assert len((root / 'meta/train.txt').read_text().splitlines()) == 20


# --------------------------------------------------------------------------- COCO
def test_coco_json_has_coco_features(synthetic_root):
    coco = COCO(str(synthetic_root / 'coco/annotations/instances_train2017.json'))
    anns = list(coco.anns.values())
    assert {a['iscrowd'] for a in anns} == {0, 1}
    assert all(isinstance(a['segmentation'], list) for a in anns if not a['iscrowd'])
    assert all(isinstance(a['segmentation']['counts'], list) for a in anns if a['iscrowd'])
    assert len({(i['height'], i['width']) for i in coco.imgs.values()}) > 3
    # all 80 categories with COCO's ids, as the real file; the five drawn ones annotated
    from mmdet.datasets import CocoDataset
    assert [(c['id'], c['name']) for c in coco.dataset['categories']] == list(
        zip(synthetic.COCO_IDS, CocoDataset.METAINFO['classes']))
    assert {coco.cats[a['category_id']]['name'] for a in anns} == set(synthetic.COCO_CLASSES)
    for a in anns:  # masks decode to the annotated region
        m = coco.annToMask(a)
        assert m.sum() == pytest.approx(a['area'], rel=0.02, abs=2)
        x, y, w, h = a['bbox']
        assert m[:, :int(x)].sum() == 0 and m[:int(y)].sum() == 0
    # occlusion: objects overlap in the image, yet each annotation keeps only its visible part
    overlapping = 0
    for img_id in coco.imgs:
        objs = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id)) if not a['iscrowd']]
        for i, a in enumerate(objs):
            for b in objs[i + 1:]:
                ax, ay, aw, ah = a['bbox']
                bx, by, bw, bh = b['bbox']
                if min(ax + aw, bx + bw) > max(ax, bx) and min(ay + ah, by + bh) > max(ay, by):
                    overlapping += 1
                    assert (coco.annToMask(a) & coco.annToMask(b)).sum() <= 2 * (aw + bw)
    assert overlapping > 3


def test_coco_loads_through_stock_mmdet_dataset(synthetic_root):
    init_default_scope('mmdet')
    from mmdet.registry import DATASETS
    cfg = dataset_cfg('synthetic_coco_instance', synthetic_root)
    assert tuple(cfg.metainfo['classes']) == synthetic.COCO_CLASSES
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    assert type(ds).__name__ == 'CocoDataset' and len(ds) == 12
    assert ds.cat_ids == [c[0] for c in synthetic.COCO_CATEGORIES]  # label i is the i-th name
    sample = ds[0]
    inst = sample['data_samples'].gt_instances
    assert len(inst) > 0 and inst.masks.masks.shape[0] == len(inst)
    assert 0 <= int(inst.labels.min()) and int(inst.labels.max()) < len(synthetic.COCO_CLASSES)
    assert max(sample['inputs'].shape[1:]) == max(cfg.img_scale)  # stock Resize to the scale
    ignored = sum(int(ds[i]['data_samples'].ignored_instances.bboxes.shape[0] > 0)
                  for i in range(len(ds)))
    assert ignored > 0  # crowd annotations become ignored instances


def _coco_gt_predictions(ann_file, corrupt=None):
    coco = COCO(str(ann_file))
    cat_ids = coco.getCatIds(catNms=synthetic.COCO_CLASSES)  # label i -> the i-th class
    rng = np.random.default_rng(0)
    preds = []
    for img_id, info in coco.imgs.items():
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id)) if not a['iscrowd']]
        boxes = torch.tensor([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                               a['bbox'][1] + a['bbox'][3]] for a in anns]).float()
        labels = torch.tensor([cat_ids.index(a['category_id']) for a in anns])
        masks = torch.from_numpy(np.stack([coco.annToMask(a) for a in anns])).bool()
        if corrupt == 'labels':
            labels = torch.from_numpy(rng.permutation(labels.numpy()))
            labels = (labels + 1) % len(cat_ids)
        preds.append(dict(img_id=img_id, ori_shape=(info['height'], info['width']),
                          pred_instances=dict(bboxes=boxes, labels=labels,
                                              scores=torch.ones(len(anns)), masks=masks)))
    return preds


def test_coco_metric_scores_ground_truth_perfectly(synthetic_root):
    from mmdet.evaluation import CocoMetric
    ann_file = synthetic_root / 'coco/annotations/instances_val2017.json'
    results = {}
    for corrupt in (None, 'labels'):
        metric = CocoMetric(ann_file=str(ann_file), metric=['bbox', 'segm'])
        metric.dataset_meta = dict(classes=synthetic.COCO_CLASSES)
        preds = _coco_gt_predictions(ann_file, corrupt)
        metric.process({}, preds)
        results[corrupt] = metric.evaluate(len(preds))
    assert results[None]['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results[None]['coco/segm_mAP'] == pytest.approx(1.0)
    assert results['labels']['coco/bbox_mAP'] < 0.5
    assert results['labels']['coco/segm_mAP'] < 0.5


# --------------------------------------------------------------------------- ADE20K
def test_ade_labels_follow_ade_convention(synthetic_root):
    ann_dir = synthetic_root / 'ade/ADEChallengeData2016/annotations/training'
    values = set()
    for p in ann_dir.glob('*.png'):
        values |= set(np.unique(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)).tolist())
    assert 0 in values  # "other", ignored with reduce_zero_label
    assert values - {0} <= set(synthetic.ADE_CLASSES) and len(values) > 5


def _ade_dataset(root, split='val'):
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    cfg = dataset_cfg('synthetic_ade20k', root)
    return DATASETS.build(cfg[f'{split}_dataloader'].dataset)


def test_ade_loads_through_stock_mmseg_dataset(synthetic_root):
    ds = _ade_dataset(synthetic_root, 'train')
    assert type(ds).__name__ == 'ADE20KDataset' and len(ds) == 8
    assert len(ds.metainfo['classes']) == 150
    sample = ds[0]
    seg = sample['data_samples'].gt_sem_seg.data
    # RandomCrop to the configured crop size (smaller when RandomResize shrank the image)
    assert seg.shape[-2:] == sample['inputs'].shape[-2:] and max(seg.shape[-2:]) <= 256
    values = set(_ade_dataset(synthetic_root)[0]['data_samples'].gt_sem_seg.data.unique().tolist())
    assert 255 in values  # label 0 -> ignore index
    assert values - {255} <= {k - 1 for k in synthetic.ADE_CLASSES}


def test_iou_metric_scores_ground_truth_perfectly(synthetic_root):
    from mmseg.evaluation import IoUMetric
    ds = _ade_dataset(synthetic_root)
    results = {}
    for corrupt in (False, True):
        metric = IoUMetric(iou_metrics=['mIoU'])
        metric.dataset_meta = ds.metainfo
        for i in range(len(ds)):
            gt = ds[i]['data_samples'].gt_sem_seg.data
            pred = gt.clone()
            pred[pred == 255] = 0
            if corrupt:  # a consistent but wrong class per region
                pred = (pred + 1) % 150
            metric.process({}, [dict(pred_sem_seg=dict(data=pred), gt_sem_seg=dict(data=gt))])
        results[corrupt] = metric.evaluate(len(ds))
    assert results[False]['mIoU'] == pytest.approx(100.0)
    assert results[True]['mIoU'] < 20.0


# --------------------------------------------------------------------------- ImageNet
def test_imagenet_loads_through_stock_mmpretrain_datasets(synthetic_root):
    init_default_scope('mmpretrain')
    from mmpretrain.registry import DATASETS
    cfg = dataset_cfg('synthetic_imagenet', synthetic_root)
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert type(train).__name__ == 'ImageNet' and len(train) == 40 and len(val) == 20
    assert len(train.CLASSES) == 1000
    assert sorted(set(train.get_gt_labels().tolist())) == list(range(10))
    assert sorted(set(val.get_gt_labels().tolist())) == list(range(10))
    assert train[0]['inputs'].shape == (3, cfg.img_size, cfg.img_size)
    # The class-folder layout alone also works (CustomDataset infers classes from folders).
    folders = DATASETS.build(dict(type='CustomDataset', data_root=str(synthetic_root / 'imagenet'),
                                  data_prefix='train', pipeline=[]))
    assert list(folders.CLASSES) == [c[0] for c in synthetic.IMAGENET_CLASSES]
    assert len(folders) == 40
    lines = (synthetic_root / 'imagenet/meta/val.txt').read_text().split()
    assert lines[0].startswith('ILSVRC2012_val_')
