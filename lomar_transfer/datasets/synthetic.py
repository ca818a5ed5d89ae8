"""Small synthetic datasets in the real on-disk layouts of COCO, ADE20K and ImageNet.

They are the suite's embedded default: the stock mmdet ``CocoDataset``, mmseg ``ADE20KDataset`` and
mmpretrain ``ImageNet``/``CustomDataset`` read them unchanged, so real data drops in by pointing
``data_root`` at it. Everything is a deterministic function of the seed. Classes are learnable
from appearance (shape, colour, texture) but not trivially: backgrounds, sizes, positions,
occlusions and noise vary.

Category names and ids are the real ones (COCO ids, ADE20K 1-based indices, ImageNet wnids), so
labels mean the same thing as on the real datasets.
"""
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils

# COCO: (id, name, BGR colour, shape) of the drawn classes, in id order (mmdet maps the json's
# categories to labels in file order). Shape + colour make the class; sizes and poses vary.
COCO_CATEGORIES = (
    (13, 'stop sign', (40, 40, 210), 'octagon'),
    (34, 'frisbee', (60, 190, 60), 'ellipse'),
    (37, 'sports ball', (30, 150, 240), 'circle'),
    (38, 'kite', (40, 210, 220), 'triangle'),
    (72, 'tv', (150, 60, 40), 'rectangle'),
)
COCO_CLASSES = tuple(c[1] for c in COCO_CATEGORIES)
# the ids of COCO's 80 categories (1-90 with gaps), in the order of mmdet's CocoDataset classes:
# the json lists them all, as instances_*2017.json does, so an 80-class head's every label has
# its category id (CocoMetric.results2json) even where only the five above occur
COCO_IDS = (*range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70,
            *range(72, 83), *range(84, 91))

# ADE20K: 1-based index in ADE's 150 classes (0 = "other", ignored with reduce_zero_label).
# Each class gets a colour and a texture.
ADE_CLASSES = {  # index: (name, BGR colour, texture)
    1: ('wall', (170, 190, 200), 'flat'),
    2: ('building', (90, 110, 150), 'grid'),
    3: ('sky', (235, 190, 120), 'gradient'),
    4: ('floor', (80, 120, 160), 'hstripes'),
    5: ('tree', (50, 120, 40), 'noise'),
    7: ('road', (90, 90, 90), 'noise'),
    10: ('grass', (60, 190, 90), 'vstripes'),
    13: ('person', (120, 80, 200), 'flat'),
    21: ('car', (200, 40, 40), 'flat'),
}

# ImageNet: first ten synsets of ILSVRC-2012 (label i = i-th class of the 1000) with a
# synthetic appearance: (wnid, BGR colour, pattern).
IMAGENET_CLASSES = (
    ('n01440764', (40, 40, 200), 'disc'),
    ('n01443537', (40, 160, 230), 'square'),
    ('n01484850', (40, 200, 60), 'triangle'),
    ('n01491361', (200, 80, 40), 'hstripes'),
    ('n01494475', (200, 60, 180), 'vstripes'),
    ('n01496331', (30, 200, 200), 'checker'),
    ('n01498041', (230, 230, 230), 'ring'),
    ('n01514668', (20, 20, 20), 'cross'),
    ('n01514859', (120, 60, 200), 'dots'),
    ('n01518878', (160, 200, 40), 'diagonal'),
)

MANIFEST = 'synthetic_manifest.json'


# --------------------------------------------------------------------------- drawing helpers
def _background(rng, h, w):
    """Smooth random colour gradient plus noise: no class is readable from the background."""
    c0, c1 = rng.uniform(40, 215, size=(2, 3))
    t = np.linspace(0, 1, w if rng.random() < .5 else h)
    ramp = c0 + (c1 - c0) * t[:, None]
    img = np.broadcast_to(ramp[None] if len(t) == w else ramp[:, None], (h, w, 3)).copy()
    img += rng.normal(0, 8, size=img.shape)
    return img


def _texture(rng, h, w, colour, kind):
    """(h, w, 3) float image of a colour with a class-specific texture."""
    img = np.empty((h, w, 3), np.float64)
    img[:] = np.asarray(colour, np.float64) * rng.uniform(.85, 1.15)
    yy, xx = np.mgrid[0:h, 0:w]
    period = rng.integers(6, 12)
    if kind == 'hstripes':
        img *= (1 - .35 * ((yy // period) % 2))[..., None]
    elif kind == 'vstripes':
        img *= (1 - .35 * ((xx // period) % 2))[..., None]
    elif kind == 'grid':
        img *= (1 - .5 * (((yy % (2 * period)) < 3) | ((xx % (2 * period)) < 3)))[..., None]
    elif kind == 'gradient':
        img *= (.75 + .35 * yy / max(h - 1, 1))[..., None]
    elif kind == 'noise':
        img += rng.normal(0, 25, size=(h, w, 1))
    return img


def _shape_mask(shape, h, w, cx, cy, size, angle):
    """uint8 mask of a filled shape centred at (cx, cy) with radius ``size``."""
    mask = np.zeros((h, w), np.uint8)
    if shape == 'circle':
        cv2.circle(mask, (int(cx), int(cy)), int(size), 1, -1)
    elif shape == 'ellipse':
        cv2.ellipse(mask, ((cx, cy), (2 * size, size), angle), 1, -1)
    else:
        sides = {'triangle': 3, 'rectangle': 4, 'octagon': 8}[shape]
        start = angle if shape != 'octagon' else 22.5
        theta = np.deg2rad(start + np.arange(sides) * 360. / sides)
        scale = (1.0, 0.6) if shape == 'rectangle' else (1.0, 1.0)
        pts = np.stack([cx + size * scale[0] * np.cos(theta),
                        cy + size * scale[1] * np.sin(theta)], axis=1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def _paint(img, mask, texture):
    m = mask.astype(bool)
    img[m] = texture[m]


def _to_uint8(img):
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _imwrite(path, img, ext='.jpg'):
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in ('.jpg', '.JPEG') else []
    ok, buf = cv2.imencode(ext if ext != '.JPEG' else '.jpg', img, params)
    assert ok, f'could not encode {path}'
    Path(path).write_bytes(buf.tobytes())


def _mask_to_polygons(mask):
    """COCO polygons (list of flat [x1, y1, ...]) of a binary mask's outer contours."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 3 and cv2.contourArea(c) >= 4:
            # +0.5: pixel centres, so that re-rasterising the polygon covers the same pixels
            polys.append((c.reshape(-1, 2).astype(np.float64) + .5).round(2).flatten().tolist())
    return polys


def _bbox(mask):
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


# --------------------------------------------------------------------------- writing helpers
def _prepare(root, manifest, overwrite):
    """Return a temp dir to write into, or None when ``root`` already holds this exact data.

    Never deletes data we did not write: a non-empty ``root`` without our manifest is an error.
    """
    root = Path(root)
    mpath = root / MANIFEST
    if mpath.exists():
        try:
            old = json.loads(mpath.read_text())
        except ValueError:
            old = None
        if old == manifest:
            return None
        if not overwrite:
            raise FileExistsError(
                f'{root} holds synthetic data made with other settings ({old}); pass '
                f'overwrite=True (--overwrite) to replace it, or choose another output directory')
    elif root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f'{root} exists and is not synthetic data written by lomar_transfer; refusing to '
            'write into it. Choose an empty or new directory.')
    tmp = root.with_name(root.name + '.tmp')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _commit(tmp, root, manifest):
    """Atomically replace ``root`` by the finished ``tmp`` (manifest written last)."""
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    root = Path(root)
    if root.exists():
        old = root.with_name(root.name + '.old')
        shutil.rmtree(old, ignore_errors=True)
        root.rename(old)
        tmp.rename(root)
        shutil.rmtree(old)
    else:
        tmp.rename(root)


# --------------------------------------------------------------------------- COCO
def _coco_image(rng, img_id, file_name, ann_id):
    h, w = int(rng.integers(20, 33)) * 8, int(rng.integers(24, 41)) * 8
    img = _background(rng, h, w)
    objects = []  # (category index, full mask)
    for _ in range(int(rng.integers(2, 7))):
        k = int(rng.integers(len(COCO_CATEGORIES)))
        size = rng.uniform(12, min(h, w) / 3.5)
        cx, cy = rng.uniform(size * .6, w - size * .6), rng.uniform(size * .6, h - size * .6)
        mask = _shape_mask(COCO_CATEGORIES[k][3], h, w, cx, cy, size, rng.uniform(0, 180))
        objects.append((k, mask, False))
    if rng.random() < .3:  # a crowd: a cluster of small objects of one class, one RLE annotation
        k = int(rng.integers(len(COCO_CATEGORIES)))
        cx, cy = rng.uniform(30, w - 30), rng.uniform(30, h - 30)
        crowd = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(4, 8))):
            crowd |= _shape_mask(COCO_CATEGORIES[k][3], h, w, cx + rng.normal(0, 12),
                                 cy + rng.normal(0, 12), rng.uniform(4, 7), rng.uniform(0, 180))
        objects.insert(0, (k, crowd, True))  # drawn first: others may occlude it
    # Paint in order: later objects occlude earlier ones; annotations keep the visible part.
    visible = []
    covered = np.zeros((h, w), bool)
    for k, mask, crowd in reversed(objects):
        vis = mask.astype(bool) & ~covered
        covered |= mask.astype(bool)
        visible.append((k, vis, crowd))
    for k, mask, _ in objects:
        _paint(img, mask, _texture(rng, h, w, COCO_CATEGORIES[k][2], 'noise'))
    anns = []
    for k, vis, crowd in reversed(visible):
        if vis.sum() < 40:
            continue  # (almost) fully occluded: not annotated, as in COCO
        if crowd:
            rle = mask_utils.encode(np.asfortranarray(vis.astype(np.uint8)))
            seg = {'counts': _rle_to_uncompressed(vis), 'size': [h, w]}
            area = float(mask_utils.area(rle))
        else:
            seg = _mask_to_polygons(vis)
            if not seg:
                continue
            rles = mask_utils.frPyObjects(seg, h, w)
            area = float(mask_utils.area(mask_utils.merge(rles)))
        anns.append(dict(id=ann_id + len(anns), image_id=img_id,
                         category_id=COCO_CATEGORIES[k][0], segmentation=seg, area=area,
                         bbox=_bbox(vis), iscrowd=int(crowd)))
    info = dict(id=img_id, file_name=file_name, height=h, width=w)
    return _to_uint8(img), info, anns


def _rle_to_uncompressed(mask):
    """COCO's uncompressed RLE counts (column-major run lengths, starting with zeros)."""
    flat = mask.astype(np.uint8).flatten(order='F')
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return counts


def make_coco(root, seed=0, num_train=64, num_val=16, overwrite=False):
    """mini-COCO: ``annotations/instances_{train,val}2017.json`` + ``{train,val}2017/*.jpg``."""
    from mmdet.datasets import CocoDataset
    manifest = dict(kind='coco', seed=seed, num_train=num_train, num_val=num_val, version=2)
    tmp = _prepare(root, manifest, overwrite)
    if tmp is None:
        return Path(root)
    (tmp / 'annotations').mkdir()
    names = CocoDataset.METAINFO['classes']
    assert len(names) == len(COCO_IDS) == 80
    assert all(names[COCO_IDS.index(i)] == name for i, name, _, _ in COCO_CATEGORIES)
    categories = [dict(id=i, name=name, supercategory='synthetic')
                  for i, name in zip(COCO_IDS, names)]
    for split, num, split_seed in (('train', num_train, seed), ('val', num_val, seed + 1)):
        rng = np.random.default_rng([split_seed, 17])
        img_dir = tmp / f'{split}2017'
        img_dir.mkdir()
        images, annotations = [], []
        for i in range(num):
            img_id = i + 1
            name = f'{img_id:012d}.jpg'
            img, info, anns = _coco_image(rng, img_id, name, len(annotations) + 1)
            _imwrite(img_dir / name, img)
            images.append(info)
            annotations.extend(anns)
        coco = dict(info=dict(description=f'lomar_transfer synthetic COCO ({split}, seed {seed})'),
                    licenses=[], images=images, annotations=annotations, categories=categories)
        (tmp / 'annotations' / f'instances_{split}2017.json').write_text(json.dumps(coco))
    _commit(tmp, root, manifest)
    return Path(root)


# --------------------------------------------------------------------------- ADE20K
def _ade_image(rng):
    h, w = int(rng.integers(24, 41)) * 8, int(rng.integers(24, 41)) * 8
    label = np.zeros((h, w), np.uint8)
    img = np.zeros((h, w, 3), np.float64)

    def region(cls, mask):
        _paint(img, mask, _texture(rng, h, w, ADE_CLASSES[cls][1], ADE_CLASSES[cls][2]))
        label[mask.astype(bool)] = cls

    # Scene layout: top (sky), middle (wall or building), bottom (floor, road or grass).
    y1 = int(h * rng.uniform(.2, .4))
    y2 = int(h * rng.uniform(.55, .75))
    rows = np.arange(h)[:, None] * np.ones((1, w))
    region(3, rows < y1)
    region(int(rng.choice([1, 2])), (rows >= y1) & (rows < y2))
    region(int(rng.choice([4, 7, 10])), rows >= y2)
    for _ in range(int(rng.integers(2, 6))):  # objects: tree blobs, people, cars
        cls = int(rng.choice([5, 13, 21]))
        cx, cy = rng.uniform(0, w), rng.uniform(y1, h)
        s = rng.uniform(12, h / 5)
        mask = np.zeros((h, w), np.uint8)
        if cls == 5:
            cv2.circle(mask, (int(cx), int(cy)), int(s), 1, -1)
        elif cls == 13:
            cv2.ellipse(mask, ((cx, cy), (s * .7, s * 2.2), 0), 1, -1)
        else:
            cv2.rectangle(mask, (int(cx - s), int(cy - s * .5)), (int(cx + s), int(cy + s * .5)),
                          1, -1)
        region(cls, mask)
    # ADE leaves "other" (0) pixels unlabelled, e.g. at object boundaries.
    edges = cv2.morphologyEx(label, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    label[edges] = 0
    img += rng.normal(0, 6, size=img.shape)
    return _to_uint8(img), label


def make_ade20k(root, seed=0, num_train=64, num_val=16, overwrite=False):
    """mini-ADE20K: ``ADEChallengeData2016/{images,annotations}/{training,validation}``.

    ``root`` is the directory that contains ``ADEChallengeData2016``.
    """
    manifest = dict(kind='ade20k', seed=seed, num_train=num_train, num_val=num_val, version=1)
    tmp = _prepare(root, manifest, overwrite)
    if tmp is None:
        return Path(root)
    base = tmp / 'ADEChallengeData2016'
    for split, prefix, num, split_seed in (('training', 'train', num_train, seed),
                                           ('validation', 'val', num_val, seed + 1)):
        rng = np.random.default_rng([split_seed, 23])
        (base / 'images' / split).mkdir(parents=True)
        (base / 'annotations' / split).mkdir(parents=True)
        for i in range(num):
            img, label = _ade_image(rng)
            name = f'ADE_{prefix}_{i + 1:08d}'
            _imwrite(base / 'images' / split / f'{name}.jpg', img)
            _imwrite(base / 'annotations' / split / f'{name}.png', label, '.png')
    _commit(tmp, root, manifest)
    return Path(root)


# --------------------------------------------------------------------------- ImageNet
def _imagenet_image(rng, k):
    h, w = int(rng.integers(12, 21)) * 8, int(rng.integers(12, 21)) * 8
    img = _background(rng, h, w)
    _, colour, pattern = IMAGENET_CLASSES[k]
    s = rng.uniform(.25, .45) * min(h, w)
    cx, cy = rng.uniform(s, w - s), rng.uniform(s, h - s)
    mask = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (np.abs(xx - cx) < s) & (np.abs(yy - cy) < s)
    if pattern == 'disc':
        cv2.circle(mask, (int(cx), int(cy)), int(s), 1, -1)
    elif pattern == 'square':
        mask[inside] = 1
    elif pattern == 'triangle':
        mask = _shape_mask('triangle', h, w, cx, cy, s, rng.uniform(0, 120))
    elif pattern == 'ring':
        cv2.circle(mask, (int(cx), int(cy)), int(s), 1, max(2, int(s / 3)))
    elif pattern == 'cross':
        t = max(2, int(s / 3))
        mask[(np.abs(xx - cx) < t) & inside] = 1
        mask[(np.abs(yy - cy) < t) & inside] = 1
    elif pattern == 'hstripes':
        mask[inside & ((yy // 5) % 2 == 0)] = 1
    elif pattern == 'vstripes':
        mask[inside & ((xx // 5) % 2 == 0)] = 1
    elif pattern == 'checker':
        mask[inside & (((yy // 6) + (xx // 6)) % 2 == 0)] = 1
    elif pattern == 'dots':
        mask[inside & ((yy % 8) < 3) & ((xx % 8) < 3)] = 1
    elif pattern == 'diagonal':
        mask[inside & (((xx + yy) // 5) % 2 == 0)] = 1
    _paint(img, mask, _texture(rng, h, w, colour, 'noise'))
    return _to_uint8(img)


def make_imagenet(root, seed=0, num_train_per_class=20, num_val_per_class=5, overwrite=False):
    """mini-ImageNet: ``train/<wnid>/*.JPEG``, flat ``val/*.JPEG`` and ``meta/{train,val}.txt``.

    ``meta`` lines are ``relative/path label`` as in mmpretrain's ImageNet; labels index the
    1000 ILSVRC-2012 classes (the ten synsets used are the first ten).
    """
    manifest = dict(kind='imagenet', seed=seed, num_train_per_class=num_train_per_class,
                    num_val_per_class=num_val_per_class, version=1)
    tmp = _prepare(root, manifest, overwrite)
    if tmp is None:
        return Path(root)
    (tmp / 'meta').mkdir()
    train_lines, val_lines = [], []
    rng = np.random.default_rng([seed, 29])
    for k, (wnid, _, _) in enumerate(IMAGENET_CLASSES):
        (tmp / 'train' / wnid).mkdir(parents=True)
        for i in range(num_train_per_class):
            rel = f'{wnid}/{wnid}_{i + 1}.JPEG'
            _imwrite(tmp / 'train' / rel, _imagenet_image(rng, k), '.JPEG')
            train_lines.append(f'{rel} {k}')
    (tmp / 'val').mkdir()
    rng = np.random.default_rng([seed + 1, 29])
    order = [(k, i) for k in range(len(IMAGENET_CLASSES)) for i in range(num_val_per_class)]
    for n, j in enumerate(rng.permutation(len(order))):  # real val: flat folder, mixed classes
        k = order[j][0]
        rel = f'ILSVRC2012_val_{n + 1:08d}.JPEG'
        _imwrite(tmp / 'val' / rel, _imagenet_image(rng, k), '.JPEG')
        val_lines.append(f'{rel} {k}')
    (tmp / 'meta' / 'train.txt').write_text('\n'.join(train_lines) + '\n')
    (tmp / 'meta' / 'val.txt').write_text('\n'.join(val_lines) + '\n')
    _commit(tmp, root, manifest)
    return Path(root)


def make_all(root, seed=0, overwrite=False, **sizes):
    """All three datasets under ``root``: ``coco/``, ``ade/`` and ``imagenet/``."""
    root = Path(root)
    return dict(
        coco=make_coco(root / 'coco', seed, overwrite=overwrite, **sizes.get('coco', {})),
        ade20k=make_ade20k(root / 'ade', seed, overwrite=overwrite, **sizes.get('ade20k', {})),
        imagenet=make_imagenet(root / 'imagenet', seed, overwrite=overwrite,
                               **sizes.get('imagenet', {})))
