"""lomar_transfer/datasets/checks.py on bad data not covered by test_reliability.py: ImageNet
without its list file, empty ADE20K folders, COCO json files that are not instances files."""
import json
import re

import pytest

from conftest import REPO
from lomar_transfer.datasets.checks import DataError, check_data, make_data
from lomar_transfer.utils import load_config
from test_reliability import coco_cfg, copy_data


def raises_exactly(message, cfg, loaders=('train_dataloader', 'val_dataloader',
                                          'test_dataloader')):
    with pytest.raises(DataError, match=f'^{re.escape(message)}$'):
        check_data(cfg, loaders)


def test_imagenet_without_its_list_file(synthetic_root, tmp_path):
    root = copy_data(synthetic_root, tmp_path, 'imagenet')
    (root / 'meta/train.txt').unlink()
    cfg = load_config(str(REPO / 'configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(root)
    raises_exactly(
        f'train_dataloader.dataset: annotation list {root}/meta/train.txt not found (expected '
        f'lines "relative/path label"); fix ann_file or make the embedded data: '
        f'{make_data(root)}',
        cfg)
    check_data(cfg, ('val_dataloader', 'test_dataloader'))  # meta/val.txt is there
    # without the list mmpretrain scans train/ when it has a folder per class: not refused
    cfg.train_dataloader.dataset.metainfo = dict(classes=[f'class {i}' for i in range(10)])
    check_data(cfg)


@pytest.mark.parametrize('kind, folder', [('images', 'images'), ('label maps', 'annotations')])
def test_empty_ade20k_folders(synthetic_root, tmp_path, kind, folder):
    root = copy_data(synthetic_root, tmp_path, 'ade') / 'ADEChallengeData2016'
    emptied = root / folder / 'training'
    for f in emptied.iterdir():
        f.unlink()
    cfg = load_config(str(REPO / 'configs/mae/upernet_vit-tiny-p8_synthetic-ade20k.py'))
    cfg.train_dataloader.dataset.data_root = str(root)
    raises_exactly(f'train_dataloader.dataset: no {kind} in {emptied}; point data_root at an '
                   'ADEChallengeData2016-style folder, or make the embedded data: '
                   f'{make_data(root)}', cfg, ('train_dataloader', ))


@pytest.mark.parametrize('drop', ['images', 'categories'])
def test_coco_json_without_images_or_categories(synthetic_root, tmp_path, drop):
    root = copy_data(synthetic_root, tmp_path, 'coco')
    ann = root / 'annotations/instances_train2017.json'
    data = json.loads(ann.read_text())
    ann.write_text(json.dumps({k: v for k, v in data.items() if k != drop}))
    raises_exactly(f"train_dataloader.dataset: {ann} is not a COCO instances file: it lacks "
                   f"['{drop}'] (expected images, annotations, categories, as in "
                   'instances_train2017.json)', coco_cfg(root))


@pytest.mark.parametrize('content', ['[]', 'null', '3'])
def test_coco_json_that_is_not_an_object(synthetic_root, tmp_path, content):
    root = copy_data(synthetic_root, tmp_path, 'coco')
    ann = root / 'annotations/instances_train2017.json'
    ann.write_text(content)
    raises_exactly(f'train_dataloader.dataset: {ann} is not a COCO instances file: it lacks '
                   'a top-level object (expected images, annotations, categories, as in '
                   'instances_train2017.json)', coco_cfg(root))


def test_the_fix_names_the_data_tool_for_the_path_the_config_reads(tmp_path):
    """Data made elsewhere: the message gives the command for the very path, and the variable
    that points the synthetic configs at another copy."""
    cfg = load_config(str(REPO / 'configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py'))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'elsewhere/imagenet')
    with pytest.raises(DataError) as e:
        check_data(cfg, ('train_dataloader', ))
    assert f'lomar-make-data --out {tmp_path}/elsewhere (python tools/' in str(e.value)
    assert 'set LOMAR_DATA_ROOT=DIR' in str(e.value) and 'data/synthetic' not in str(e.value)
