"""One run per work dir: a second training or benchmark run in the same folder refuses at once.

The lock is an ``flock`` on ``WORK_DIR/run.lock``: the kernel releases it when its process ends,
however it ends (crash, ``kill -9``, node reboot of a local disk), so a dead run never blocks the
folder. The file holds who took it (pid, host, start, command) for the refusal message; a run
that ends normally empties it, so a non-empty file found unlocked was left by a run that died.
"""
import fcntl
import json
import os
import os.path as osp
import socket
import sys
import time

from mmengine.logging import print_log

from ..errors import UserError

LOCK_NAME = 'run.lock'


class WorkDirBusy(UserError):
    """Another live run holds the work dir."""


class WorkDirLock:
    """Context manager holding ``WORK_DIR/run.lock`` for the lifetime of a run."""

    def __init__(self, work_dir, what='run'):
        self.path = osp.join(work_dir, LOCK_NAME)
        self.what = what
        self._file = None

    def _take(self, f):
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(f)
            f.close()
            raise WorkDirBusy(
                f'{osp.dirname(self.path)} is in use by another run ({holder}). Wait for it to '
                'finish or stop it, or give this run another --work-dir') from None

    def refuse_if_busy(self):
        """Refuse now, before this run writes anything there, if a live run holds the work dir
        (without taking it: :meth:`__enter__` does that when the run starts)."""
        if not osp.isfile(self.path):
            return
        with open(self.path, 'a+') as f:
            self._take(f)  # released when the file closes

    def __enter__(self):
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        f = open(self.path, 'a+')
        self._take(f)
        previous = _describe(f)
        if previous != 'unknown':
            print_log(f'{self.path}: taking over from a run that ended without releasing it '
                      f'({previous})', logger='current')
        f.seek(0)
        f.truncate()
        f.write(json.dumps(dict(pid=os.getpid(), host=socket.gethostname(),
                                started=time.strftime('%Y-%m-%d %H:%M:%S'),
                                what=self.what, command=' '.join(sys.argv))))
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc):
        self._file.seek(0)
        self._file.truncate()  # a clean end: the next run finds an empty file
        self._file.close()  # releases the flock
        self._file = None


def _describe(f):
    f.seek(0)
    try:
        info = json.loads(f.read())
    except ValueError:
        return 'unknown'
    return (f"{info.get('what', 'run')} pid {info.get('pid')} on {info.get('host')}, started "
            f"{info.get('started')}: {info.get('command')}")
