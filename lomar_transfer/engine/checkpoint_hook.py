"""Checkpoints that survive a kill at any moment.

mmengine 0.10.7 writes a checkpoint in place and, with ``max_keep_ckpts``, deletes the oldest
one *before* writing the new one; ``last_checkpoint`` is rewritten in place too. A kill during a
save can therefore leave a partial file, no complete checkpoint, or a ``last_checkpoint`` naming a
partial file. Here every local write is atomic (:func:`lomar_transfer.fileio.atomic_write`,
mmengine's local backend once ``lomar_transfer`` is imported), and old checkpoints are pruned only
after the new one and ``last_checkpoint`` are complete. Every config names this hook instead of
mmengine's (same arguments; ``configs/_base_/safety.py``).
"""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from ..fileio import WriteError, atomic_write
from ..registry import HOOKS
from .hooks import ExactResumeHook


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that never leaves the run without a complete last checkpoint.

    When a save fails (disk full, ...) the run stops with :class:`WriteError` naming the
    checkpoint that ``last_checkpoint`` still points to, which ``--resume`` continues from.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        prune, keep = [], None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                             and self.keep_ckpt_ids[-1] == step):
            keep = list(self.keep_ckpt_ids)
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                prune.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            # saved inside the checkpoint, so that a resumed run prunes the ones before it
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        try:
            self._write(runner, self.filename_tmpl.format(step), meta, self.by_epoch)
        except WriteError:
            if keep is not None:  # the old ones are all still on disk
                self.keep_ckpt_ids.clear()
                self.keep_ckpt_ids.extend(keep)
                runner.message_hub.update_info('keep_ckpt_ids', keep)
            raise
        if not is_main_process():
            return
        # the last iteration checkpoint written for a preemption in an epoch-based run
        extra = runner.message_hub.get_info('preemption_ckpt')
        if extra:
            prune.append(extra)
            runner.message_hub.update_info('preemption_ckpt', None)
        for old in prune:  # only now that the new checkpoint is complete
            name = old if isinstance(old, str) else self.filename_tmpl.format(old)
            path = self.file_backend.join_path(self.out_dir, name)
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)

    def save_extra(self, runner, filename, meta):
        """Write a checkpoint outside the hook's schedule (``PreemptionHook`` in an epoch-based
        run). It becomes ``last_checkpoint`` and is removed after the next scheduled save."""
        previous = runner.message_hub.get_info('preemption_ckpt')
        runner.message_hub.update_info('preemption_ckpt', filename)  # saved inside it
        try:
            self._write(runner, filename, meta, by_epoch=False)
        except WriteError:
            runner.message_hub.update_info('preemption_ckpt', previous)
            raise
        return self.last_ckpt

    def _write(self, runner, filename, meta, by_epoch):
        """The checkpoint, then ``last_checkpoint`` naming it; on failure both stay as they
        were and the run stops with a message that names the checkpoint to resume from."""
        previous = runner.message_hub.get_info('last_ckpt')
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        # saved inside the checkpoint: a resumed run knows its last checkpoint
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        for hook in runner.hooks:  # every rank's random states, for an exact resume
            if isinstance(hook, ExactResumeHook):
                hook.gather_states()
        try:
            runner.save_checkpoint(
                self.out_dir, filename, self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=by_epoch,
                backend_args=self.backend_args, **self.args)
            if is_main_process():
                atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        except WriteError as e:
            self.last_ckpt = previous
            runner.message_hub.update_info('last_ckpt', previous)
            resume = (f'last_checkpoint still names {previous}; running the same command '
                      'again resumes from it' if previous else 'no earlier checkpoint')
            raise WriteError(f'saving checkpoint {filename} failed, training stopped: {e}. '
                             f'{resume}') from e
