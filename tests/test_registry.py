"""The lomar_transfer registry is reachable from mmpretrain, mmdet and mmseg."""
import importlib
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO, retarget
from lomar_transfer.models.backbones import VisionTransformer

PROJECTS = ['mmpretrain', 'mmdet', 'mmseg']
SMOKE_CONFIGS = {
    'mmpretrain': 'configs/smoke/vit-tiny-p16_linear_synthetic-imagenet.py',
    'mmdet': 'configs/smoke/mask-rcnn_vit-tiny-p16_synthetic-coco.py',
    'mmseg': 'configs/smoke/fcn_vit-tiny-p16_synthetic-ade20k.py',
}


@pytest.mark.parametrize('project', PROJECTS)
def test_build_from_project_registry(project):
    models = importlib.import_module(f'{project}.registry').MODELS
    backbone = models.build(dict(type='lomar_transfer.VisionTransformer', arch='tiny',
                                 img_size=32, patch_size=8))
    assert type(backbone) is VisionTransformer
    out = backbone(torch.zeros(1, 3, 32, 32))
    assert out[0].shape == (1, 192, 4, 4)


def test_modules_load_lazily_through_locations():
    """Importing the package only creates the registries; the first build imports the models."""
    code = '''
import sys
from mmengine.config import Config
cfg = Config(dict(custom_imports=dict(imports=['lomar_transfer'], allow_failed_imports=False)))
from mmengine.utils import import_modules_from_strings
import_modules_from_strings(**cfg.custom_imports)
assert 'lomar_transfer.models' not in sys.modules, 'models imported eagerly'
from mmdet.registry import MODELS
MODELS.build(dict(type='lomar_transfer.VisionTransformer', arch='tiny'))
assert 'lomar_transfer.models.backbones.vision_transformer' in sys.modules
print('ok')
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('ok')


@pytest.mark.parametrize('project', PROJECTS)
def test_runner_trains_with_project_default_scope(project, synthetic_root, tmp_path):
    """A config with default_scope=<project> builds our backbone, trains 2 iters and evaluates."""
    cfg = Config.fromfile(REPO / SMOKE_CONFIGS[project])  # handles custom_imports
    assert cfg.default_scope == project
    retarget(cfg._cfg_dict, 'data/synthetic', str(synthetic_root))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint.interval = 2
    runner = Runner.from_cfg(cfg)
    assert type(runner.model.backbone) is VisionTransformer
    runner.train()
    assert (tmp_path / 'iter_2.pth').is_file()
    metrics = runner.val_loop.run()
    expected = {'mmpretrain': 'accuracy/top1', 'mmdet': 'coco/segm_mAP', 'mmseg': 'mIoU'}[project]
    assert expected in metrics
