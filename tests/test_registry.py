"""The lomar_transfer registry is reachable from mmpretrain, mmdet and mmseg, whose runners
train our backbone and evaluate the trained model."""
import importlib
import math
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
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


@pytest.mark.slow
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


def test_every_registry_holds_something():
    """A registry of ours that nothing registers into (there were empty DATASETS and TRANSFORMS)
    only makes a type lookup under our scope fall through with a warning."""
    from mmengine.registry import Registry

    from lomar_transfer import registry
    registries = {name: r for name, r in vars(registry).items()
                  if isinstance(r, Registry) and r.scope == registry.SCOPE}
    assert set(registries) == {'MODELS', 'HOOKS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'RUNNERS',
                               'TRANSFORMS'}
    for name, r in registries.items():
        r.import_from_location()
        assert len(r.module_dict) > 0, f'{name} holds nothing'


# what a run reports, its range (mmdet's COCO mAP is a fraction, the others percentages), and
# the last layer of the task head, which training must move
METRICS = {'mmpretrain': ('accuracy/top1', 100), 'mmdet': ('coco/segm_mAP', 1),
           'mmseg': ('mIoU', 100)}
LAST_LAYER = {'mmpretrain': 'head.fc.weight', 'mmdet': 'roi_head.mask_head.conv_logits.weight',
              'mmseg': 'decode_head.conv_seg.weight'}


class Snapshot(Hook):
    """The model's weights when training starts (after init_weights)."""

    def before_train(self, runner):
        self.state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


@pytest.mark.parametrize('project', PROJECTS)
@pytest.mark.slow
def test_runner_trains_with_project_default_scope(project, synthetic_root, tmp_path):
    """A config with default_scope=<project> builds our backbone, trains 2 iters (which move
    every backbone weight and the task head) and evaluates the trained model: finite metrics in
    their range."""
    cfg = Config.fromfile(REPO / SMOKE_CONFIGS[project])  # handles custom_imports
    assert cfg.default_scope == project
    retarget(cfg._cfg_dict, 'data/synthetic', str(synthetic_root))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint.interval = 2
    runner = Runner.from_cfg(cfg)
    assert type(runner.model.backbone) is VisionTransformer
    snapshot = Snapshot()
    runner.register_hook(snapshot, priority='LOWEST')
    runner.train()
    trained = torch.load(tmp_path / 'iter_2.pth', map_location='cpu',
                         weights_only=False)['state_dict']
    before = snapshot.state
    assert trained.keys() == before.keys()
    params = dict(runner.model.named_parameters())
    moved = {k for k in params if not torch.equal(trained[k], before[k])}
    backbone = {k for k in params if k.startswith('backbone.')}
    assert backbone and backbone <= moved, sorted(backbone - moved)
    assert LAST_LAYER[project] in moved
    # the model evaluated is the trained one (the checkpoint's weights)
    now = runner.model.state_dict()
    assert all(torch.equal(now[k].cpu(), trained[k]) for k in trained)
    metrics = runner.val_loop.run()
    name, top = METRICS[project]
    assert name in metrics, metrics
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            assert math.isfinite(value), (key, value)
    assert 0 <= metrics[name] <= top, metrics
