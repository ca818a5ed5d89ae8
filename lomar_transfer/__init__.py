"""LoMaR / MAE / CAE backbones and transfer benchmarks on OpenMMLab.

Importing the package creates the ``lomar_transfer`` registries (children of mmengine's roots),
which is all ``custom_imports=dict(imports=['lomar_transfer'])`` needs: the modules that register
into them are imported lazily through the registries' ``locations``.
"""
import warnings

# mmengine / mmcv still import setuptools' pkg_resources, which warns on every run that it is
# deprecated: nothing a user of this package can act on
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from . import fileio  # noqa: F401,E402  (safe checkpoint reading, atomic writes in mmengine)
from .registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, RUNNERS  # noqa: F401,E402

import _lomar_transfer_scope  # noqa: F401,E402  (lomar_transfer:: configs, if the .pth is absent)

__version__ = '0.1.0'
