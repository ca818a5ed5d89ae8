"""The runner our configs name (``runner_type='lomar_transfer.CheckedRunner'``).

mmdet's, mmseg's and mmpretrain's stock ``tools/train.py`` and ``tools/test.py`` build
``runner_type`` when a config sets it, so what this class adds holds for every launcher, not only
ours. The other safety features are plain hooks declared in the configs
(``configs/_base_/safety.py``).
"""
from mmengine.runner import Runner

from ..datasets.checks import check_data
from ..registry import RUNNERS
from ..utils import setup_cpu_distributed


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """mmengine's ``Runner`` that checks the datasets on disk before it builds them, and runs the
    ``pytorch`` launcher on machines without a GPU (gloo).

    The checks raise :class:`~lomar_transfer.datasets.checks.DataError` naming the bad file and
    the fix, before a dataset class fails on it with a traceback minutes into the run.
    """

    @classmethod
    def from_cfg(cls, cfg):
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
