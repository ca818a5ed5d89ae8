"""Stop cleanly when the scheduler asks: finish the iteration, checkpoint, exit with a status
that says "run me again".

Slurm (and most schedulers) send SIGTERM some time before killing a preempted or cancelled job,
and ``sbatch/srun --signal=USR1@N`` sends SIGUSR1 N seconds before the time limit. On either
signal every rank finishes its current iteration, rank 0 writes a checkpoint (atomically, through
the config's ``AtomicCheckpointHook``) and every rank exits with

=======  =========  ===========================================================================
signal   status     meaning
=======  =========  ===========================================================================
SIGUSR1  75         EX_TEMPFAIL: stopped before the time limit; ``tools/slurm_train.sh``
                    requeues the job
SIGTERM  143        128 + SIGTERM, what a process ended by SIGTERM reports (preemption,
                    ``scancel``): Slurm requeues a preempted job itself, a cancelled one stays
                    cancelled
SIGINT   130        128 + SIGINT: Ctrl-C, the same checkpoint; a second Ctrl-C aborts at once
                    (KeyboardInterrupt, nothing saved)
=======  =========  ===========================================================================

Running the same command again resumes from that checkpoint (``CheckedRunner`` resumes on its own
when the work dir has one).
"""
import signal
import threading
import time

import torch
from mmengine.dist import all_reduce, barrier, is_distributed
from mmengine.hooks import CheckpointHook, Hook

from ..registry import HOOKS

EXIT_STATUS = {signal.SIGUSR1: 75, signal.SIGTERM: 143, signal.SIGINT: 130}


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Turn SIGTERM / SIGUSR1 / SIGINT into a checkpoint at the end of the current iteration and
    an exit with the status of :data:`EXIT_STATUS`.

    The signal handler only records the signal, so the iteration in progress (forward, backward,
    optimizer step, collectives) completes. The ranks agree with one ``all_reduce`` per iteration
    (a few bytes) on whether any of them was signalled, so that they all stop after the same
    iteration even when the signal reaches them at different times.
    """

    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW): it may already have saved this iteration

    def __init__(self, signals=('SIGTERM', 'SIGUSR1', 'SIGINT')):
        self.signals = [signal.Signals[s] if isinstance(s, str) else signal.Signals(s)
                        for s in signals]
        self.received = None
        self._since = None
        self._previous = {}
        self._last_ckpt = None

    # ------------------------------------------------------------------ signal handlers
    def _record(self, signum, frame):
        # Ctrl-C again: the user does not want to wait. (Within a second it is the same Ctrl-C
        # passed on by a parent, e.g. lomar-benchmark, that the terminal also sent here.)
        if signum == signal.SIGINT and self.received == signal.SIGINT \
                and time.monotonic() - self._since > 1.0:
            raise KeyboardInterrupt
        if signum == signal.SIGINT and self.received is None:
            print('SIGINT: stopping after this iteration with a checkpoint (Ctrl-C again to '
                  'abort without one)', flush=True)
        if self.received is None:
            self.received, self._since = signum, time.monotonic()

    def install(self):
        """Install the handlers (idempotent). ``CheckedRunner`` calls this before it builds the
        train loop, whose data loader forks its workers: they inherit the handler and so live
        through a signal sent to the whole process group, instead of dying and failing the
        iteration in progress."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._record)

    def uninstall(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    # ------------------------------------------------------------------ hook points
    def before_train(self, runner):
        self.install()  # late (after the loader's workers started) when the runner did not

    def after_train(self, runner):
        self.uninstall()

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._last_ckpt = runner.message_hub.get_info('last_ckpt')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        flag = torch.tensor([int(self.received or 0)])
        if is_distributed():
            all_reduce(flag, op='max')
        signum = int(flag)
        if not signum:
            return
        sig = signal.Signals(signum)
        saved = runner.message_hub.get_info('last_ckpt')
        if saved == self._last_ckpt:  # the checkpoint hook did not save this iteration
            hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
            if hook is None:
                runner.logger.warning(f'{sig.name}: the config has no checkpoint hook, so '
                                      'nothing is saved')
            else:
                saved = save_after_iteration(hook, runner)
        barrier()  # no rank exits (and makes torchrun stop the others) before the save is done
        status = EXIT_STATUS.get(sig, 128 + signum)
        runner.logger.info(
            f'{sig.name} received: stopped after iteration {runner.iter + 1}; checkpoint '
            f'{saved}. Exiting with status {status}; run the same command again to resume '
            'from it.')
        self.uninstall()
        raise SystemExit(status)


def save_after_iteration(hook, runner):
    """Checkpoint the state after the current iteration with the config's checkpoint hook.

    Iteration-based runs get the hook's usual ``iter_N.pth``. In an epoch-based run the epoch is
    not finished, so the checkpoint is an iteration one (``iter_N.pth``, meta epoch = epochs
    done): ``ExactResumeHook`` then re-reads the epoch's finished batches on resume instead of
    training on them twice.
    """
    step = runner.iter + 1
    meta = dict(epoch=runner.epoch, iter=step)
    if not hook.by_epoch:
        hook._save_checkpoint_with_step(runner, step, meta)
        return hook.last_ckpt
    return hook.save_extra(runner, f'iter_{step}.pth', meta)
