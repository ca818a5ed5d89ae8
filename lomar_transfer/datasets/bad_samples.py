"""Bad samples: a corrupt, truncated or unreadable image or label map met while loading a sample.

Training replaces such a sample by the next good one, logs the file once, and lists it in
``WORK_DIR/bad_samples.txt``; past ``bad_samples.max_skipped`` distinct files (config key, in
``configs/_base_/safety.py``) the run stops with :class:`BadSamplesError` listing them.
Evaluation never skips: a bad file stops it with :class:`BadEvalSampleError` naming the file, as
metrics over a silently changed set would not be comparable.

:class:`~lomar_transfer.engine.CheckedRunner` wraps the dataset of every dataloader it builds in
:class:`BadSampleGuard`, so this holds with any launcher.
"""
import logging
import os
import os.path as osp

from mmengine.logging import print_log
from torch.utils.data import Dataset

from ..errors import UserError

try:
    import fcntl
except ImportError:  # not on Windows: records may then be listed twice, still counted once
    fcntl = None

RECORD_FILE = 'bad_samples.txt'
DEFAULT_MAX_SKIPPED = 10  # as configs/_base_/safety.py; for configs without a `bad_samples`
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm',
                  '.pbm', '.jp2')
LISTED = 20  # files named in an error message; the record file has them all


class BadSamplesError(UserError):
    """Too many bad samples in the training data, or (subclass) one in evaluation data."""

    def __init__(self, message):
        # torch re-raises an exception of a DataLoader worker as ``type(e)(text)``, the text
        # being "Caught ... Original Traceback ...": keep its last line, our one-line message,
        # so the CLI's `error: ...` stays one line with any num_workers
        if message.startswith('Caught ') and '\nOriginal Traceback' in message:
            message = message.rstrip().splitlines()[-1].split(': ', 1)[-1]
        super().__init__(message)


class BadEvalSampleError(BadSamplesError):
    """A bad file in a validation / test set: evaluation stops rather than skip it."""


class _BadFile(Exception):
    def __init__(self, path, reason):
        super().__init__(path, reason)
        self.path, self.reason = osp.abspath(path), ' '.join(reason.split())  # one line


def sample_paths(dataset, idx):
    """The local files a sample is read from: the ``*_path`` entries of its data info
    (``img_path``; mmseg's ``seg_map_path``), as mmdet, mmseg and mmpretrain name them."""
    if not hasattr(dataset, 'get_data_info'):
        return []
    paths = []
    for key, value in dataset.get_data_info(idx).items():
        if not key.endswith('_path'):
            continue
        for p in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(p, (str, os.PathLike)) and '://' not in str(p):  # not remote backends
                paths.append(str(p))
    return paths


def _jpeg_truncated(data):
    """A complete JPEG has its end-of-image marker FFD9 after its first scan (SOS, FFDA): walk the
    marker segments up to it (skipping APPn segments, whose EXIF thumbnail has its own FFD9),
    then look for FFD9 in the entropy-coded data, where stuffing (FF00) keeps it from occurring
    by chance. Trailing padding or data after the image do not matter."""
    pos, n = 2, len(data)
    while True:
        start = pos
        while pos < n and data[pos] == 0xFF:  # a marker, after any fill bytes
            pos += 1
        if pos >= n:
            return True
        marker = data[pos]
        if pos == start or marker in (0x00, 0xD9):
            return False  # not a layout we know: leave it to the decoder
        pos += 1
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:
            continue  # markers without a length field
        if pos + 2 > n:
            return True
        pos += int.from_bytes(data[pos:pos + 2], 'big')
        if pos > n:
            return True
        if marker == 0xDA:
            return data.find(b'\xff\xd9', pos) < 0


def _png_truncated(data):
    """Walk the chunks (length, type, data, CRC) to the IEND chunk."""
    pos, n = 8, len(data)
    while pos + 8 <= n:
        if data[pos + 4:pos + 8] == b'IEND':
            return False
        pos += 12 + int.from_bytes(data[pos:pos + 4], 'big')
    return True


def file_problem(path):
    """Why the file cannot serve as a sample, found without decoding it, or None: empty, or a
    JPEG / PNG cut short (depending on the OpenCV build, or with Pillow's LOAD_TRUNCATED_IMAGES,
    a truncated JPEG decodes with only a warning, its missing rows grey). The format comes from
    the magic bytes, not the name: ImageNet has a PNG named .JPEG."""
    if not osp.isfile(path):
        return None  # a path the pipeline may not use: judged only if loading fails
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        return f'cannot be read ({e.strerror or e})'
    if not data:
        return 'empty file'
    if data.startswith(b'\xff\xd8\xff') and _jpeg_truncated(data):
        return 'truncated JPEG (no end-of-image marker)'
    if data.startswith(b'\x89PNG\r\n\x1a\n') and _png_truncated(data):
        return 'truncated PNG (no IEND chunk)'
    return None


def load_problem(path, error):
    """After loading a sample raised ``error``: why ``path`` is to blame, or None (then the
    error is not the data's, e.g. a bug in a transform, and is raised as it is)."""
    if not osp.exists(path):
        return 'file not found' if isinstance(error, OSError) else None
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        return f'cannot be read ({e.strerror or e})'
    kind = ('JPEG' if data.startswith(b'\xff\xd8\xff') else 'PNG' if data.startswith(b'\x89PNG')
            else None)
    if kind is None and not path.lower().endswith(IMAGE_SUFFIXES):
        return None  # not meant to be an image (e.g. a .npy): a decoder's verdict says nothing
    import cv2
    import numpy as np
    try:
        if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None:
            return None
    except cv2.error:
        pass
    return f'cannot be decoded as an image ({kind or f"unknown format, starts with {data[:8]}"})'


def read_records(record_file):
    """``{path: reason}`` of a ``bad_samples.txt`` (lines ``PATH<TAB>REASON``)."""
    if not osp.isfile(record_file):
        return {}
    with open(record_file) as f:
        return _parse(f.read())


def _parse(text):
    return dict(line.split('\t', 1) for line in text.splitlines() if '\t' in line)


def _listing(records):
    items = [f'{p} ({r})' for p, r in records.items()]
    more = f'; ... {len(items) - LISTED} more' if len(items) > LISTED else ''
    return '; '.join(items[:LISTED]) + more


class BadSampleGuard(Dataset):
    """Wraps a dataset; ``train=True`` replaces a bad sample by the next good index (not a random
    one: an exactly resumed run must read the same batches) and records it in ``record_file``,
    which the DataLoader workers of every rank append to, so that the bound counts distinct files
    over the whole run, a resumed one included; ``train=False`` raises
    :class:`BadEvalSampleError`. Other attributes are the wrapped dataset's."""

    _own = ('dataset', 'train', 'where', 'record_file', 'max_skipped', '_records')

    def __init__(self, dataset, train, where, record_file=None,
                 max_skipped=DEFAULT_MAX_SKIPPED):
        if isinstance(max_skipped, bool) or not isinstance(max_skipped, int) or max_skipped < 0:
            raise UserError(f'bad_samples.max_skipped must be an integer >= 0, not '
                            f'{max_skipped!r}')
        self.dataset, self.train, self.where = dataset, train, where
        self.record_file, self.max_skipped = record_file, max_skipped
        self._records = {}  # without a record file (this process only)

    def __getattr__(self, name):  # metainfo, get_data_info, ... (and not while unpickling)
        if name in BadSampleGuard._own:
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __setattr__(self, name, value):  # e.g. mmdet's PipelineSwitchHook sets `pipeline`
        if name in BadSampleGuard._own:
            object.__setattr__(self, name, value)
        else:
            setattr(self.dataset, name, value)

    def __deepcopy__(self, memo):
        return self  # mmengine deep-copies the dataloader config this is put in: share it

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        n = len(self.dataset)
        for step in range(n):
            try:
                return self._load((idx + step) % n)
            except _BadFile as bad:
                if not self.train:
                    raise BadEvalSampleError(
                        f'{self.where}: bad sample {bad.path}: {bad.reason}. Evaluation does not '
                        'skip samples (its metrics would cover another set): replace the file, '
                        'or drop it from the annotation list') from bad.__cause__
                self._record(bad)
        raise BadSamplesError(f'{self.where}: every sample is bad ({_listing(self._read())})')

    def _load(self, idx):
        paths = sample_paths(self.dataset, idx)
        for path in paths:
            reason = file_problem(path)
            if reason:
                raise _BadFile(path, reason)
        try:
            return self.dataset[idx]
        except Exception as e:
            for path in paths:
                reason = load_problem(path, e)
                if reason:
                    raise _BadFile(path, reason) from e
            raise

    def _read(self):
        return read_records(self.record_file) if self.record_file else dict(self._records)

    def _record(self, bad):
        """List the file (once: workers, epochs and a resumed run meet it again) and log it;
        past the bound raise, in whichever process meets the file."""
        if self.record_file is None:
            new = bad.path not in self._records
            self._records.setdefault(bad.path, bad.reason)
            records = dict(self._records)
        else:
            with open(self.record_file, 'a+') as f:  # O_APPEND: lines of processes interleave
                if fcntl:
                    fcntl.flock(f, fcntl.LOCK_EX)  # read + append as one step across workers
                f.seek(0)
                records = _parse(f.read())
                new = bad.path not in records
                if new:
                    f.write(f'{bad.path}\t{bad.reason}\n')
                    records[bad.path] = bad.reason
        if len(records) > self.max_skipped:
            where = f' (all listed in {self.record_file})' if self.record_file else ''
            raise BadSamplesError(
                f'{len(records)} bad samples in {self.where}, more than '
                f'bad_samples.max_skipped={self.max_skipped} allows: {_listing(records)}{where}. '
                'Replace or delete these files (and drop them from the annotation list), or '
                'raise bad_samples.max_skipped in the config')
        if new:
            kept = f'; listed in {self.record_file}' if self.record_file else ''
            print_log(f'bad sample skipped: {bad.path}: {bad.reason}; the next sample takes its '
                      f'place ({len(records)} of at most {self.max_skipped} bad files{kept})',
                      logger='current', level=logging.WARNING)


def guard_dataloader(loader_cfg, train, where, work_dir=None, bound=None, fresh=False):
    """A copy of a dataloader config with its dataset built (as mmengine's
    ``Runner.build_dataloader`` does) and wrapped in :class:`BadSampleGuard`. ``bound`` is the
    config's ``bad_samples`` dict; ``fresh`` (a training run that does not resume) starts a new
    record file rather than count an earlier run's files."""
    from mmengine.registry import DATASETS
    bound = dict(bound or {})
    max_skipped = bound.pop('max_skipped', DEFAULT_MAX_SKIPPED)
    if bound:
        raise UserError(f'bad_samples has unknown keys {sorted(bound)}; it takes max_skipped')
    dataset = DATASETS.build(loader_cfg['dataset'])
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    record_file = osp.join(work_dir, RECORD_FILE) if train and work_dir else None
    if fresh and record_file and osp.exists(record_file):
        os.remove(record_file)
    cfg = dict(loader_cfg)  # shallow: only the dataset entry changes
    cfg['dataset'] = BadSampleGuard(dataset, train, where, record_file, max_skipped)
    return cfg
