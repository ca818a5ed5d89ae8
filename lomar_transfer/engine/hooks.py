"""Hooks that make long runs safe to interrupt: exact resume and a stop on non-finite losses.

``tools/train.py`` adds both to every config (``custom_hooks``), so they apply to mmpretrain,
mmdet and mmseg runs alike.
"""
import math
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info, is_distributed
from mmengine.hooks import Hook, LoggerHook

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
        self._gathered = None

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

    def gather_states(self):
        """Collect every rank's states on rank 0 (a collective: ``AtomicCheckpointHook`` calls
        it on all ranks before a save, which only rank 0 runs). The ranks' states differ even
        with one seed (random crops draw a varying number of numbers), so each rank gets its
        own back on resume."""
        self._gathered = all_gather_object(self._states()) if is_distributed() else None

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_states'] = self._gathered or [self._states()]
        self._gathered = None  # one entry per rank

    def after_load_checkpoint(self, runner, checkpoint):
        states = checkpoint.get('rng_states')
        if isinstance(states, list):  # per rank; a dict in checkpoints before per-rank states
            rank, world = get_dist_info()
            if len(states) != world:
                runner.logger.warning(
                    f'the checkpoint holds the random states of {len(states)} ranks, this run '
                    f'has {world}: it continues, but not exactly as the interrupted run would')
            states = states[rank] if rank < len(states) else states[0]
        self._pending = states

    def before_train_epoch(self, runner):
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # iteration-based: the loop skips, we restore
            if self._pending is not None:
                states, self._pending = self._pending, None
                self._restore_after_skip(loop, loop._iter, states)
            return
        # epoch-based: a checkpoint written mid-epoch (PreemptionHook) has iter beyond the
        # epoch's start; mmengine would train the whole epoch again, so skip what was done
        done = runner.iter - runner.epoch * len(loop.dataloader)
        if done > 0:
            runner.logger.info(f'resuming inside epoch {runner.epoch + 1}: re-reading its first '
                               f'{done} batches without training on them')
            states, self._pending = self._pending, None
            self._real_dataloader = loop.dataloader
            loop.dataloader = _SkippingLoader(loop.dataloader, done, states, self._restore)
        elif self._pending is not None:  # at an epoch start: restore now
            states, self._pending = self._pending, None
            self._restore(states)

    def after_train_epoch(self, runner):
        real = getattr(self, '_real_dataloader', None)
        if real is not None:
            runner.train_loop.dataloader, self._real_dataloader = real, None

    def _restore_after_skip(self, loop, skip, states):
        """Wrap an iteration-based loop's iterator so the states are restored right before the
        first batch the loop trains on (after the ``skip`` batches mmengine re-reads)."""
        if not skip:
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


class _SkippingLoader:
    """An epoch's data loader that reads and drops its first ``skip`` batches (the same ones,
    in the same order, with the same augmentations: the sampler is seeded by the epoch), then
    restores the RNG states saved after them and yields the rest."""

    def __init__(self, loader, skip, states, restore):
        self.loader, self.skip, self.states, self.restore = loader, skip, states, restore

    def __len__(self):
        return len(self.loader) - self.skip

    def __getattr__(self, name):  # dataset, sampler, batch_size, ...
        return getattr(self.loader, name)

    def __iter__(self):
        batches = iter(self.loader)
        for _ in range(self.skip):
            next(batches)
        if self.states is not None:
            self.restore(self.states)
        yield from batches


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first NaN / inf loss, before anything is saved for that iteration:
    the last good checkpoint stays what ``last_checkpoint`` points to. Also logs the last
    iteration's loss when the logger's interval skips it (a run shorter than the interval
    would otherwise end without a single loss line)."""

    @staticmethod
    def _log_last(runner, value):
        step = runner.iter + 1
        if step != runner.max_iters:
            return
        interval = next((h.interval for h in runner.hooks if isinstance(h, LoggerHook)), 1)
        if step % interval:
            runner.logger.info(f'Iter(train) [{step}/{runner.max_iters}]  loss: {value:.4f}  '
                               f'(the last iteration; the logger logs every {interval})')

    priority = 'ABOVE_NORMAL'  # before CheckpointHook (VERY_LOW) saves the iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        value = float(loss.detach() if hasattr(loss, 'detach') else loss)
        self._log_last(runner, value)
        if not math.isfinite(value):
            # set by (Atomic)CheckpointHook on save and restored on resume
            last = runner.message_hub.get_info('last_ckpt')
            raise NonFiniteLossError(
                f'the training loss became {value} at iteration {runner.iter + 1}; training '
                f'stopped and nothing was saved for this iteration. Last good checkpoint: '
                f'{last or "none yet"}. Lower the learning rate or check the data, then run '
                f'again (with --resume to continue from that checkpoint).')
