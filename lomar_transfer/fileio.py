"""How lomar_transfer reads and writes files: checkpoints read safely, every write atomic.

Reading. torch >= 2.6 loads with ``weights_only=True`` by default, which refuses mmengine
0.10.7's training checkpoints: their ``message_hub`` pickles ``HistoryBuffer`` objects, which hold
their statistics functions (pickled as ``getattr(HistoryBuffer, 'mean')``), plus numpy arrays.
Turning ``weights_only`` off would let any checkpoint run code. Instead, a checkpoint that the
weights-only loader refuses is read by an unpickler that allows torch's weights-only globals,
numpy arrays/scalars, ``HistoryBuffer`` and ``getattr`` restricted to a ``HistoryBuffer``'s
statistics methods; anything else is refused with an error naming the global. A file that is not
a checkpoint (empty, truncated, text, safetensors...) gets one :class:`CheckpointError` saying
what it is.

Writing. mmengine 0.10.7 writes checkpoints, ``last_checkpoint`` and dumps in place, so a kill
or a full disk during a save can leave a partial file. :func:`atomic_write` writes to a temporary
file renamed over the target (atomic on POSIX) and raises :class:`WriteError` when it cannot.

Both are installed into mmengine when ``lomar_transfer`` is imported (:func:`_patch_mmengine`):
the reader as the loader of local paths, the writer as the local file backend, so every Runner
(mmpretrain, mmdet, mmseg) that uses our ``custom_imports``, and ``tools/test.py``, resumes,
tests and saves through them.
"""
import os
import os.path as osp
import pickle
import reprlib
import types
import zipfile

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .errors import UserError


class CheckpointError(UserError, RuntimeError):
    """A file given as a checkpoint that is none, or not this model's: ``{path}: {problem}``.
    Also a ``RuntimeError``, which torch and mmengine raise for bad checkpoints."""

    def __init__(self, path, problem):
        super().__init__(f'{path}: {problem}')


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """Also a ``FileNotFoundError``, for callers that catch that."""


def _allowed_globals():
    allowed = {
        'numpy.core.multiarray._reconstruct': np.core.multiarray._reconstruct,
        'numpy.core.multiarray.scalar': np.core.multiarray.scalar,
        'numpy.ndarray': np.ndarray,
        'numpy.dtype': np.dtype,
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
    }
    for name in dir(np.dtypes):  # numpy >= 1.25 pickles dtypes by their class
        cls = getattr(np.dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            allowed[f'numpy.dtypes.{name}'] = cls
    from torch import _weights_only_unpickler  # torch's own weights-only allowlist
    allowed.update(_weights_only_unpickler._get_allowed_globals())
    allowed.update(_weights_only_unpickler._get_user_allowed_globals())
    return allowed


# HistoryBuffer's default statistics (registered lazily by its first instance) + custom ones
_HISTORY_BUFFER_STATISTICS = {'min', 'max', 'current', 'mean'}


class RefusedGlobal(pickle.UnpicklingError):
    """A checkpoint that would run code (its own message says which global)."""


def _history_buffer_getattr(obj, name):
    # pickle stores the functions HistoryBuffer.min/mean/... as getattr(HistoryBuffer, 'min')
    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and \
            name in _HISTORY_BUFFER_STATISTICS | set(HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise RefusedGlobal(
        f'checkpoint calls getattr({type(obj).__name__}, {name!r}); only HistoryBuffer '
        'statistics are allowed')


class _RestrictedUnpickler(pickle.Unpickler):

    def find_class(self, module, name):
        if module in ('builtins', '__builtin__') and name == 'getattr':
            return _history_buffer_getattr
        obj = _ALLOWED.get(f'{module}.{name}')
        if obj is None:
            raise RefusedGlobal(
                f'checkpoint references {module}.{name}, which lomar_transfer does not load '
                '(it could run code). If you trust this file, convert it once with '
                'torch.load(path, weights_only=False) and save only its state_dict.')
        return obj


_ALLOWED = _allowed_globals()
# torch.load(pickle_module=...) only needs ``Unpickler`` (and ``load`` for the legacy format).
restricted_pickle = types.SimpleNamespace(
    Unpickler=_RestrictedUnpickler,
    load=lambda f, **kw: _RestrictedUnpickler(f, **kw).load(),
    __name__='lomar_transfer_restricted_pickle')


def load_local_checkpoint(filename, map_location=None):
    """``torch.load`` that accepts weights and mmengine training checkpoints, and nothing else."""
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        return torch.load(filename, map_location=map_location, weights_only=False,
                          pickle_module=restricted_pickle)


_AGAIN = 'an interrupted download or copy? Download or copy it again'
# what torch.save(..., _use_new_zipfile_serialization=False) writes first
_LEGACY_MAGIC = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)


def _text_start(head):
    """The start of a text file (e.g. an HTML error page saved as the download), else None."""
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError as e:
        if e.reason != 'unexpected end of data':  # not a character cut by the read
            return None
        text = head[:e.start].decode('utf-8')
    return text if text and all(c.isprintable() or c.isspace() for c in text) else None


def describe_unreadable(path, exc):
    """What is wrong with a file that ``torch.load`` failed on (``exc``), from its bytes: torch's
    own errors ('invalid load key', 'could not find MARK', '[Errno 22]') do not say."""
    if isinstance(exc, RefusedGlobal):
        return str(exc)
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(256)
    text = _text_start(head)
    if size == 0:
        return f'is empty (0 bytes): {_AGAIN}'
    if head.startswith(b'PK\x03\x04'):  # a zip archive: torch's format since 1.6
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:  # the archive's directory is at its end
            return f'is truncated ({size} bytes, the end of its zip archive is missing): {_AGAIN}'
        if not any(n.endswith('/data.pkl') for n in names):
            return (f'is a zip archive but not a PyTorch checkpoint (no */data.pkl; it holds '
                    f'{reprlib.repr(names)})')
    elif head.startswith(_LEGACY_MAGIC):  # torch's format before 1.6: pickles, then the data
        return (f'is truncated or corrupted ({size} bytes; a PyTorch checkpoint of the pre-1.6 '
                f'format that fails to load, {type(exc).__name__}: {exc}): {_AGAIN}')
    elif head.startswith(b'\x80'):  # another pickle
        return f'is a Python pickle but not a PyTorch checkpoint ({type(exc).__name__}: {exc})'
    elif head[8:10] == b'{"':  # 8-byte header size, then a JSON header
        return ('is a safetensors file, not a PyTorch checkpoint: convert it with '
                'torch.save(safetensors.torch.load_file(path), new_path)')
    elif text is not None:
        return (f'is a text file, not a checkpoint (it starts with {text[:40]!r}'
                f'{"..." if len(text) > 40 else ""}): a wrong path, or an error page saved '
                'instead of the download?')
    else:
        return (f'is not a PyTorch checkpoint: neither a zip archive (torch >= 1.6) nor a pickle '
                f'(older torch); its first bytes are {head[:8]!r} ({size} bytes in all)')
    return f'cannot be read as a PyTorch checkpoint ({type(exc).__name__}: {exc})'


def unwrap_checkpoint(ckpt):
    """The state dict inside a checkpoint file's dict ('state_dict', 'model' or 'module')."""
    for key in ('state_dict', 'model', 'module'):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            return ckpt[key]
    return ckpt


def _holds_weights(ckpt):
    """Tensors at the top of the file's dict, or in one of its entries (``state_dict``,
    ``model``, a DINO/iBOT training checkpoint's ``teacher``...)."""
    if not isinstance(ckpt, dict):
        return False
    return any(torch.is_tensor(v) or isinstance(v, dict) and
               any(torch.is_tensor(t) for t in v.values()) for v in ckpt.values())


def read_checkpoint(path, map_location=None, missing_hint='check the path'):
    """:func:`load_local_checkpoint` of a file that must hold weights, or one
    :class:`CheckpointError` naming the file and what is wrong with it: missing, empty,
    truncated, text, another format, or holding no tensors."""
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise MissingCheckpointError(path, 'is a directory, not a checkpoint file'
                                     if osp.isdir(path) else f'not found: {missing_hint}')
    try:
        ckpt = load_local_checkpoint(path, map_location)
    except Exception as e:  # torch raises all kinds on a bad file; each is the file's fault
        raise CheckpointError(path, describe_unreadable(path, e)) from e
    if not _holds_weights(ckpt):
        raise CheckpointError(
            path, f'holds {reprlib.repr(ckpt)} ({type(ckpt).__name__}), not weights: a dict of '
            "tensors, or a dict with them under a key such as 'state_dict', 'model' or 'teacher'")
    return ckpt


class WriteError(UserError, OSError):
    """A file could not be written (disk full, quota, permissions); nothing was replaced."""


def atomic_write(path, data):
    """Write bytes or text to ``path`` through a temporary file and a rename: ``path`` is either
    its old content or the new one, never a part. A failed write (ENOSPC, EACCES, ...) removes
    the temporary file and raises :class:`WriteError`."""
    path = str(path)
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        os.makedirs(osp.dirname(path) or '.', exist_ok=True)
        with open(tmp, 'wb' if isinstance(data, bytes) else 'w') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if osp.exists(tmp):
            os.remove(tmp)
        kept = 'its previous content is unchanged' if osp.exists(path) else 'nothing was written'
        raise WriteError(f'could not write {path}: {e.strerror or e} ({kept}); free space or '
                         'fix the permissions there') from e


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text`` (checkpoints, dumps)."""

    def put(self, obj, filepath):
        atomic_write(filepath, obj)

    def put_text(self, obj, filepath, encoding='utf-8'):
        atomic_write(filepath, obj.encode(encoding))


def _load_from_local(filename, map_location=None):
    return read_checkpoint(filename, map_location)


def _patch_mmengine():
    """Local checkpoints are read by :func:`read_checkpoint`, local files written atomically."""
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')  # '' = plain paths


_patch_mmengine()
