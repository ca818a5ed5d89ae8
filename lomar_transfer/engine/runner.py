"""The runner our configs name (``runner_type='lomar_transfer.CheckedRunner'``).

mmdet's, mmseg's and mmpretrain's stock ``tools/train.py`` and ``tools/test.py`` build
``runner_type`` when a config sets it, so what this class adds holds for every launcher, not only
ours. The other safety features are plain hooks declared in the configs
(``configs/_base_/safety.py``).
"""
import os
import os.path as osp
import re
from contextlib import nullcontext

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from ..datasets.bad_samples import guard_dataloader
from ..datasets.checks import check_data
from ..fileio import CheckpointError
from ..models.backbones.weights import check_fit
from ..registry import RUNNERS, SCOPE
from ..utils import setup_cpu_distributed
from .preemption import PreemptionHook
from .work_dir_lock import WorkDirLock


def drop_package_scope(node):
    """Remove the ``_scope_='lomar_transfer'`` that mmengine stamps on the outermost typed dicts
    of a config reached through ``lomar_transfer::`` (mmengine/config/config.py
    ``_dict_to_config_dict``): with it, e.g. mmseg's ``PackSegInputs`` would be looked up in our
    registry. Our configs name each component of ours with its scope (``lomar_transfer.X``) and
    leave every other type to the config's ``default_scope``, as when they are loaded by path."""
    if isinstance(node, Config):  # (not a dict itself)
        node = node._cfg_dict
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
        # before Runner.__init__ writes its config copy and log folder there (rank 0 alone:
        # the process group does not exist yet)
        if cfg.get('work_dir') and int(os.environ.get('RANK', 0)) == 0:
            WorkDirLock(cfg.work_dir).refuse_if_busy()
        if cfg.get('launcher', 'none') != 'none':
            setup_cpu_distributed(cfg)  # before Runner.__init__ calls mmengine's init_dist
        return super().from_cfg(cfg)

    def train(self):
        """Train with the work dir locked against a second run, resuming on its own from the
        work dir's ``last_checkpoint`` when a run there was interrupted, and with the preemption
        signals handled from before the data loader starts its workers."""
        check_data(self.cfg, ('train_dataloader', 'val_dataloader'))
        lock = WorkDirLock(self.work_dir, 'training') if is_main_process() else nullcontext()
        with lock:
            done = self._auto_resume()
            if done:
                self.logger.info(done)
                return self.model
            for hook in self.hooks:
                if isinstance(hook, PreemptionHook):
                    hook.install()
            return super().train()

    def _auto_resume(self):
        """A relaunched (requeued, preempted) job continues where it stopped without
        ``--resume``: mmengine's resume from ``last_checkpoint``, which wins over ``load_from``
        (the weights a run starts from, not where a relaunch continues). ``auto_resume=False``
        in the config restarts such a run from scratch instead. Returns what to say instead of
        training when the run it resumes had finished, else None."""
        last = osp.join(self.work_dir, 'last_checkpoint')
        if self._resume and self._load_from is not None:
            return None  # resume from a file the user named
        if self._resume and not osp.isfile(last):
            raise CheckpointError(
                self.work_dir, 'holds no run to resume (no last_checkpoint there): check the '
                '--work-dir, or drop --resume to start a new run in it')
        if not (self._resume or self.cfg.get('auto_resume', True)) or not osp.isfile(last):
            return None
        with open(last) as f:
            name = f.read().strip()
        asked, self._resume, self._load_from = self._resume, True, None
        done = self._completed_run(name)
        if not asked and not done:
            self.logger.info(
                f'auto-resume: {last} names {name}; continuing that run from it (set '
                'auto_resume=False in the config, or use another --work-dir, to start afresh)')
        return done

    def _completed_run(self, name):
        """What to say instead of training when ``name``, the checkpoint this run resumes, is
        its loop's end (``iter_N.pth`` / ``epoch_N.pth``, N the loop's total), or None."""
        loop = self.cfg.get('train_cfg') or {}
        unit, total = ('epoch', loop.get('max_epochs')) if 'max_epochs' in loop else \
            ('iter', loop.get('max_iters'))
        found = re.fullmatch(rf'{unit}_(\d+)\.pth', osp.basename(name))
        if total is None or not found or int(found[1]) < total:
            return None
        return (f'this run is complete: {found[1]}/{total} {unit}s done, last checkpoint '
                f'{name}; logs and results in {self.work_dir}. Nothing to train: give another '
                '--work-dir (or delete this one) to train again, or lengthen the schedule to '
                'continue it')

    def load_checkpoint(self, filename, *args, **kwargs):
        """mmengine's loading of ``load_from``, a resumed and a tested checkpoint, refusing
        (:class:`~lomar_transfer.fileio.CheckpointError`) what it would only warn about:
        another model's weights, and for a resume, anything but a training checkpoint of this
        very model."""
        model = self.model.module if is_model_wrapper(self.model) else self.model
        try:
            checkpoint = check_fit(model, lambda: super(CheckedRunner, self).load_checkpoint(
                filename, *args, **kwargs), filename, exact=self._resume)
            if self._resume and 'iter' not in checkpoint.get('meta', {}):  # Runner.resume reads it
                raise CheckpointError(filename, 'holds weights only, not a training checkpoint to '
                                      'resume from (no meta.iter): start from it with load_from')
        except CheckpointError as e:
            if self._resume and self._load_from is None:  # the user did not name this file
                last = osp.join(self.work_dir, 'last_checkpoint')
                e.args = (f'{e} ({last} names it; use another --work-dir to start afresh)', )
            raise
        return checkpoint

    def val(self):
        check_data(self.cfg, ('val_dataloader', ))
        return super().val()

    def test(self):
        check_data(self.cfg, ('test_dataloader', ))
        return super().test()

    def build_train_loop(self, loop):
        # the loop builds its dataloader here: build_dataloader makes that one skip bad samples
        self._building_train_loop = True
        try:
            return super().build_train_loop(loop)
        finally:
            self._building_train_loop = False

    def build_dataloader(self, dataloader, seed=None, diff_rank_seed=False):
        """mmengine's (a staticmethod, which its loops call as ``runner.build_dataloader``) with
        the dataset in a :class:`~lomar_transfer.datasets.bad_samples.BadSampleGuard`: training
        replaces a corrupt / truncated / unreadable sample and lists it in
        ``WORK_DIR/bad_samples.txt`` (at most ``bad_samples.max_skipped`` files), evaluation
        stops at one naming the file."""
        if isinstance(dataloader, dict) and isinstance(dataloader.get('dataset'), dict):
            train = getattr(self, '_building_train_loop', False)
            where = 'train_dataloader' if train else next(
                (name for name in ('val_dataloader', 'test_dataloader')
                 if dataloader is getattr(self, f'_{name}')), 'evaluation dataloader')
            dataloader = guard_dataloader(
                dataloader, train, where, self.work_dir, self.cfg.get('bad_samples'),
                fresh=train and not self._resume and is_main_process())
        return Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
