"""The runner our configs name (``runner_type='lomar_transfer.CheckedRunner'``).

mmdet's, mmseg's and mmpretrain's stock ``tools/train.py`` and ``tools/test.py`` build
``runner_type`` when a config sets it, so what this class adds holds for every launcher, not only
ours. The other safety features are plain hooks declared in the configs
(``configs/_base_/safety.py``).
"""
from mmengine.runner import Runner

from ..datasets.checks import check_data
from ..registry import RUNNERS, SCOPE
from ..utils import setup_cpu_distributed


def drop_package_scope(node):
    """Remove the ``_scope_='lomar_transfer'`` that mmengine stamps on the outermost typed dicts
    of a config reached through ``lomar_transfer::`` (mmengine/config/config.py
    ``_dict_to_config_dict``): with it, e.g. mmseg's ``PackSegInputs`` would be looked up in our
    registry. Our configs name each component of ours with its scope (``lomar_transfer.X``) and
    leave every other type to the config's ``default_scope``, as when they are loaded by path."""
    if isinstance(node, dict):
        if node.get('_scope_') == SCOPE:
            del node['_scope_']
        for value in node.values():
            drop_package_scope(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            drop_package_scope(value)
    return node


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """mmengine's ``Runner`` that checks the datasets on disk before it builds them, and runs the
    ``pytorch`` launcher on machines without a GPU (gloo).

    The checks raise :class:`~lomar_transfer.datasets.checks.DataError` naming the bad file and
    the fix, before a dataset class fails on it with a traceback minutes into the run.
    """

    @classmethod
    def from_cfg(cls, cfg):
        drop_package_scope(cfg)
        if cfg.get('launcher', 'none') != 'none':
            setup_cpu_distributed(cfg)  # before Runner.__init__ calls mmengine's init_dist
        return super().from_cfg(cfg)

    def train(self):
        check_data(self.cfg, ('train_dataloader', 'val_dataloader'))
        return super().train()

    def val(self):
        check_data(self.cfg, ('val_dataloader', ))
        return super().val()

    def test(self):
        check_data(self.cfg, ('test_dataloader', ))
        return super().test()
