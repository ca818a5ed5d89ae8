"""Hooks that make long runs safe to interrupt: exact resume and a stop on non-finite losses.

``tools/train.py`` adds both to every config (``custom_hooks``), so they apply to mmpretrain,
mmdet and mmseg runs alike.
"""
import math
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from ..errors import UserError
from ..registry import HOOKS


class NonFiniteLossError(UserError, RuntimeError):
    """Raised by :class:`FiniteLossHook`; ``tools/train.py`` turns it into a one-line exit."""


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save the RNG states in every checkpoint and restore them on resume at the point where the
    uninterrupted run would be, so that a resumed run continues bit for bit (CPU, same seed).

    mmengine restores weights, optimizer, schedulers and the data order (an iteration-based loop
    re-reads the batches it skips), but not the random states that drive augmentations, masking
    and drop path. They are saved after iteration k; on resume they are put back right before
    batch k + 1 is read, i.e. after the skipped batches have been re-read.
    """

    priority = 'VERY_HIGH'

    def __init__(self):
        self._pending = None

    @staticmethod
    def _states():
        states = dict(python=random.getstate(), numpy=np.random.get_state(),
                      torch=torch.get_rng_state())
        if torch.cuda.is_available():
            states['cuda'] = torch.cuda.get_rng_state_all()
        return states

    @staticmethod
    def _restore(states):
        random.setstate(states['python'])
        np.random.set_state(states['numpy'])
        torch.set_rng_state(states['torch'])
        if 'cuda' in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states['cuda'])

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_states'] = self._states()

    def after_load_checkpoint(self, runner, checkpoint):
        self._pending = checkpoint.get('rng_states')

    def before_train_epoch(self, runner):
        if self._pending is None:
            return
        states, self._pending = self._pending, None
        loop = runner.train_loop
        skip = getattr(loop, '_iter', 0) if hasattr(loop, 'dataloader_iterator') else 0
        if not skip:  # epoch-based loops resume at an epoch start: restore now
            self._restore(states)
            return
        inner = loop.dataloader_iterator
        restore = self._restore

        class _RestoreAfterSkip:
            """The loop's iterator; restores the states before the first batch it trains on."""

            def __init__(self):
                self.left = skip

            def __iter__(self):
                return self

            def __next__(self):
                if self.left == 0:
                    restore(states)
                    loop.dataloader_iterator = inner  # done: hand the plain iterator back
                else:
                    self.left -= 1
                return next(inner)

        loop.dataloader_iterator = _RestoreAfterSkip()


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first NaN / inf loss, before anything is saved for that iteration:
    the last good checkpoint stays what ``last_checkpoint`` points to."""

    priority = 'ABOVE_NORMAL'  # before CheckpointHook (VERY_LOW) saves the iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        value = float(loss)
        if not math.isfinite(value):
            # set by (Atomic)CheckpointHook on save and restored on resume
            last = runner.message_hub.get_info('last_ckpt')
            raise NonFiniteLossError(
                f'the training loss became {value} at iteration {runner.iter + 1}; training '
                f'stopped and nothing was saved for this iteration. Last good checkpoint: '
                f'{last or "none yet"}. Lower the learning rate or check the data, then run '
                f'again (with --resume to continue from that checkpoint).')
