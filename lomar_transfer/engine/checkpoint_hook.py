"""Checkpoints that survive a kill at any moment.

mmengine 0.10.7 writes a checkpoint in place and, with ``max_keep_ckpts``, deletes the oldest
one *before* writing the new one; ``last_checkpoint`` is rewritten in place too. A kill during a
save can therefore leave a partial file, no complete checkpoint, or a ``last_checkpoint`` naming a
partial file. Here every local write goes to a temporary file that is renamed over the target
(atomic on POSIX), and old checkpoints are pruned only after the new one and ``last_checkpoint``
are complete. ``tools/train.py`` swaps mmengine's ``CheckpointHook`` for this one (same
arguments).
"""
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from ..registry import HOOKS


def atomic_write(path, data):
    """Write bytes or text to ``path`` through a temporary file and a rename."""
    path = str(path)
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb' if isinstance(data, bytes) else 'w') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text`` (checkpoints, dumps)."""

    def put(self, obj, filepath):
        atomic_write(filepath, obj)

    def put_text(self, obj, filepath, encoding='utf-8'):
        atomic_write(filepath, obj.encode(encoding))


register_backend('local', AtomicLocalBackend, force=True, prefixes='')  # '' = plain paths


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that never leaves the run without a complete last checkpoint."""

    def _save_checkpoint_with_step(self, runner, step, meta):
        prune = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                             and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                prune.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in prune:  # only now that the new checkpoint is complete
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
