"""The ``lomar_transfer`` registries.

Children of mmengine's root registries, so every OpenMMLab project whose registries hang from the
same roots (mmpretrain, mmdet, mmseg) builds our components as ``type='lomar_transfer.Name'``.
``locations`` lets a registry import the modules that fill it the first time it is searched.
Only what we register has a registry: datasets are the stock ones (the synthetic data is written
in the real layouts); the one transform of ours is detectron2's crop (``datasets.transforms``).
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

SCOPE = 'lomar_transfer'

MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE,
                  locations=['lomar_transfer.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope=SCOPE, locations=['lomar_transfer.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope=SCOPE,
                                      locations=['lomar_transfer.engine'])
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope=SCOPE,
                  locations=['lomar_transfer.engine'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
                      locations=['lomar_transfer.datasets.transforms'])
