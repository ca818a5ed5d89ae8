from pathlib import Path

import pytest

from lomar_transfer.datasets.synthetic import make_all

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """Small versions of the three embedded datasets, made once per test session."""
    root = tmp_path_factory.mktemp('synthetic')
    make_all(root, seed=0,
             coco=dict(num_train=12, num_val=8),
             ade20k=dict(num_train=8, num_val=6),
             imagenet=dict(num_train_per_class=4, num_val_per_class=2))
    return root


def retarget(cfg, old, new):
    """Replace the prefix ``old`` of every string in a config (data roots baked into dataloaders)."""
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            cfg[k] = retarget(v, old, new)
    elif isinstance(cfg, list):
        return [retarget(v, old, new) for v in cfg]
    elif isinstance(cfg, str) and cfg.startswith(old):
        return new + cfg[len(old):]
    return cfg


def format2_names(state_dict, prefix='backbone.'):
    """A state dict of our ViT (under ``prefix``) as lomar_transfer wrote it before format 3:
    the block list named ``blocks`` (timm's name) in the keys and in torch's ``_metadata``."""
    import re
    from collections import OrderedDict
    old = re.compile(rf'^{re.escape(prefix)}layers(?=\.\d+(\.|$)|$)')
    out = OrderedDict((old.sub(prefix + 'blocks', k), v) for k, v in state_dict.items())
    meta = getattr(state_dict, '_metadata', None)
    if meta is not None:
        out._metadata = OrderedDict((old.sub(prefix + 'blocks', k), dict(v))
                                    for k, v in meta.items())
    return out


def weights(path):
    """A backbone's pretrained weights as OpenMMLab configs give them (init_cfg=Pretrained)."""
    return dict(type='Pretrained', checkpoint=str(path))
