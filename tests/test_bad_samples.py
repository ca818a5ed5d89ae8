"""Bad samples (lomar_transfer/datasets/bad_samples.py): a corrupt or truncated image or label map
is replaced in training, logged, listed in WORK_DIR/bad_samples.txt, and stops the run past
``bad_samples.max_skipped``; evaluation stops at the first, naming it. In-process tests of the
guard cover the combinations (COCO, ADE20K images and label maps, ImageNet); a few runs of
tools/train.py and tools/test.py cover the wiring through CheckedRunner and DataLoader workers."""
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmengine.registry import DATASETS, init_default_scope
from PIL import Image
from torch.utils.data import DataLoader

from conftest import REPO
from lomar_transfer.datasets.bad_samples import (BadEvalSampleError, BadSamplesError,
                                                 file_problem, guard_dataloader, read_records)
from lomar_transfer.utils import load_config

CONFIGS = dict(imagenet='configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py',
               ade='configs/mae/upernet_vit-tiny-p8_synthetic-ade20k.py',
               coco='configs/mae/mask-rcnn_vit-tiny-p8_synthetic-coco.py')
ROOTS = dict(imagenet='imagenet', ade='ade/ADEChallengeData2016', coco='coco')
GARBAGE = b'corrupt!' * 64
UNDECODABLE = "cannot be decoded as an image (unknown format, starts with b'corrupt!')"
TRUNCATED = dict(jpg='truncated JPEG (no end-of-image marker)', png='truncated PNG (no IEND chunk)')


def copy_root(synthetic_root, tmp_path, kind):
    """Only the one dataset a test needs."""
    top = ROOTS[kind].split('/')[0]
    shutil.copytree(synthetic_root / top, tmp_path / top)
    return tmp_path / ROOTS[kind]


def loader_cfg(kind, root, split='train'):
    cfg = load_config(str(REPO / CONFIGS[kind]))
    init_default_scope(cfg.default_scope)
    loader = cfg[f'{split}_dataloader']
    loader.dataset.data_root = f'{root}/'
    return loader


def first_paths(kind, root, n, key='img_path', split='train'):
    """The files of the first ``n`` samples, in the dataset's order."""
    dataset = DATASETS.build(loader_cfg(kind, root, split).dataset)
    return [dataset.get_data_info(i)[key] for i in range(n)]


def spoil(corrupt, truncate):
    """Garbage bytes in one file; the first half of a real file in the other."""
    with open(corrupt, 'wb') as f:
        f.write(GARBAGE)
    with open(truncate, 'rb') as f:
        data = f.read()
    with open(truncate, 'wb') as f:
        f.write(data[:len(data) // 2])


def guard(kind, root, train=True, work_dir=None, max_skipped=10, split='train'):
    where = 'train_dataloader' if train else f'{split}_dataloader'
    return guard_dataloader(loader_cfg(kind, root, split), train, where,
                            str(work_dir) if work_dir else None,
                            dict(max_skipped=max_skipped))['dataset']


# (dataset, data_info key of the spoiled files, their suffix)
CASES = [('imagenet', 'img_path', 'jpg'), ('coco', 'img_path', 'jpg'), ('ade', 'img_path', 'jpg'),
         ('ade', 'seg_map_path', 'png')]


@pytest.mark.parametrize('kind,key,suffix', CASES)
@pytest.mark.slow
def test_training_replaces_and_records_bad_samples(kind, key, suffix, synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path, kind)
    bad = first_paths(kind, root, 2, key)
    spoil(*bad)
    log = tmp_path / 'log.txt'
    MMLogger.get_instance(f'bad-{kind}-{suffix}', log_file=str(log))  # print_log's 'current'
    dataset = guard(kind, root, work_dir=tmp_path)
    third = dataset.get_data_info(2)['img_path']
    for idx in (0, 1, 0):  # both replaced by the next good sample; met again: listed once
        assert dataset[idx]['data_samples'].img_path == third
    assert dataset[2]['data_samples'].img_path == third
    assert read_records(tmp_path / 'bad_samples.txt') == {
        bad[0]: UNDECODABLE, bad[1]: TRUNCATED[suffix]}
    assert len((tmp_path / 'bad_samples.txt').read_text().splitlines()) == 2
    text = log.read_text()
    for path, reason in read_records(tmp_path / 'bad_samples.txt').items():
        assert text.count(f'bad sample skipped: {path}: {reason}; the next sample') == 1


@pytest.mark.parametrize('kind,key,suffix', CASES)
@pytest.mark.slow
def test_evaluation_stops_at_a_bad_file(kind, key, suffix, synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path, kind)
    bad = first_paths(kind, root, 2, key, split='val')
    spoil(*bad)
    dataset = guard(kind, root, train=False, work_dir=tmp_path, split='val')
    with pytest.raises(BadEvalSampleError, match='^val_dataloader: bad sample ') as e:
        dataset[0]
    assert str(e.value).startswith(f'val_dataloader: bad sample {bad[0]}: {UNDECODABLE}. '
                                   'Evaluation does not skip samples')
    with pytest.raises(BadEvalSampleError,
                       match=re.escape(f'bad sample {bad[1]}: {TRUNCATED[suffix]}.')):
        dataset[1]
    assert not (tmp_path / 'bad_samples.txt').exists()


def test_bound_stops_training_listing_the_files(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path, 'ade')
    bad = first_paths('ade', root, 2, 'seg_map_path')
    spoil(*bad)
    dataset = guard('ade', root, work_dir=tmp_path, max_skipped=1)
    with pytest.raises(BadSamplesError) as e:
        dataset[0]
    assert str(e.value) == (
        '2 bad samples in train_dataloader, more than bad_samples.max_skipped=1 allows: '
        f'{bad[0]} ({UNDECODABLE}); {bad[1]} ({TRUNCATED["png"]}) (all listed in '
        f'{tmp_path}/bad_samples.txt). Replace or delete these files (and drop them from the '
        'annotation list), or raise bad_samples.max_skipped in the config')
    (tmp_path / 'w0').mkdir()
    with pytest.raises(BadSamplesError, match='max_skipped=0 allows'):  # 0: no skipping at all
        guard('ade', root, work_dir=tmp_path / 'w0', max_skipped=0)[1]


def test_a_resumed_run_counts_each_file_once(synthetic_root, tmp_path):
    """A resumed run meets the skipped samples again and keeps the list (fresh=False); a new run
    in the work dir starts another (fresh=True: CheckedRunner, when it does not resume)."""
    root = copy_root(synthetic_root, tmp_path, 'ade')
    spoil(*first_paths('ade', root, 2))
    record = tmp_path / 'bad_samples.txt'

    def run(fresh, max_skipped=2):
        return guard_dataloader(loader_cfg('ade', root), True, 'train_dataloader', str(tmp_path),
                                dict(max_skipped=max_skipped), fresh=fresh)['dataset'][0]

    run(fresh=True)
    run(fresh=False)
    assert len(record.read_text().splitlines()) == 2
    with open(record, 'a') as f:
        f.write('/earlier/run.jpg\tempty file\n')
    with pytest.raises(BadSamplesError, match='^3 bad samples'):
        run(fresh=False)
    run(fresh=True)
    assert '/earlier/run.jpg' not in read_records(record)


def test_valid_images_of_unusual_kinds_load(synthetic_root, tmp_path):
    """As in real ImageNet: a PNG named .JPEG, CMYK and progressive JPEGs, data after the
    end-of-image marker; none is a bad sample."""
    root = copy_root(synthetic_root, tmp_path, 'imagenet')
    paths = first_paths('imagenet', root, 4)
    image = cv2.imread(paths[0])
    cv2.imwrite(paths[0] + '.png', image)
    shutil.move(paths[0] + '.png', paths[0])
    Image.open(paths[1]).convert('CMYK').save(paths[1], 'JPEG')
    Image.open(paths[2]).save(paths[2], 'JPEG', progressive=True)
    with open(paths[3], 'ab') as f:
        f.write(b'\0' * 100 + b'trailer')
    dataset = guard('imagenet', root, work_dir=tmp_path)
    for i, path in enumerate(paths):
        sample = dataset[i]
        assert sample['data_samples'].img_path == path
        assert sample['inputs'].shape[0] == 3
    assert not (tmp_path / 'bad_samples.txt').exists()


def test_truncation_found_by_magic_bytes_not_name(synthetic_root, tmp_path):
    jpeg = next((synthetic_root / 'imagenet/train').rglob('*.JPEG')).read_bytes()
    png = cv2.imencode('.png', cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1))[1].tobytes()
    # an EXIF thumbnail carries its own end-of-image marker before the main image
    app1 = b'Exif\0\0\xff\xd8thumbnail\xff\xd9'
    exif = jpeg[:2] + b'\xff\xe1' + (len(app1) + 2).to_bytes(2, 'big') + app1 + jpeg[2:]
    cases = {'a.JPEG': (png[:-12], TRUNCATED['png']), 'b.png': (jpeg[:-2], TRUNCATED['jpg']),
             'c.jpg': (exif[:len(exif) * 3 // 4], TRUNCATED['jpg']), 'd.jpg': (exif, None),
             'e.jpg': (jpeg[:100], TRUNCATED['jpg']), 'f.JPEG': (png, None),
             'g.jpg': (b'', 'empty file'), 'h.jpg': (GARBAGE, None)}  # h: the decoder's to judge
    for name, (data, problem) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert file_problem(str(tmp_path / name)) == problem, name


class Buggy:
    """A dataset whose transform fails on good files: a bug, not a bad sample."""

    def __init__(self, path):
        self.path = path

    def __len__(self):
        return 3

    def get_data_info(self, idx):
        return dict(img_path=self.path, seg_map_path=self.path + '.absent.png')

    def __getitem__(self, idx):
        raise KeyError('gt_label')


def test_a_failing_transform_is_not_taken_for_a_bad_sample(synthetic_root, tmp_path):
    from lomar_transfer.datasets.bad_samples import BadSampleGuard
    good = str(next((synthetic_root / 'imagenet/train').rglob('*.JPEG')))
    dataset = BadSampleGuard(Buggy(good), True, 'train_dataloader', str(tmp_path / 'rec.txt'))
    with pytest.raises(KeyError, match='gt_label'):
        dataset[0]
    assert not (tmp_path / 'rec.txt').exists()


def test_worker_errors_stay_one_line(synthetic_root, tmp_path):
    """torch re-raises a worker's exception with the worker's traceback as its message."""
    root = copy_root(synthetic_root, tmp_path, 'imagenet')
    bad = first_paths('imagenet', root, 2, split='val')
    spoil(*bad)
    dataset = guard('imagenet', root, train=False, split='val')
    loader = DataLoader(dataset, batch_size=1, num_workers=1, collate_fn=lambda x: x)
    with pytest.raises(BadEvalSampleError) as e:
        next(iter(loader))
    assert str(e.value) == (f'val_dataloader: bad sample {bad[0]}: {UNDECODABLE}. Evaluation '
                            'does not skip samples (its metrics would cover another set): '
                            'replace the file, or drop it from the annotation list')


# --- runs of the tools (CheckedRunner wraps the loaders) ---------------------------------------

def tool(script, kind, root, work_dir, *options, checkpoint=()):
    cmd = [sys.executable, f'tools/{script}.py', str(REPO / CONFIGS[kind]), *checkpoint,
           '--work-dir', str(work_dir), '--cfg-options', 'model.backbone.init_cfg=None',
           f'train_dataloader.dataset.data_root={root}/',
           f'test_dataloader.dataset.data_root={root}/', *options]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


TRAIN = ('train_cfg.max_iters=2', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
         'train_dataloader.dataset.indices=3')  # 2 bad of 3: both met in the first 2 iterations


@pytest.mark.parametrize('kind,workers', [('imagenet', 2), ('coco', 0), ('ade', 0)])
@pytest.mark.slow
def test_training_run_skips_and_lists_bad_samples(kind, workers, synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path, kind)
    bad = first_paths(kind, root, 2)
    spoil(*bad)
    options = [*TRAIN, f'train_dataloader.num_workers={workers}']
    if kind == 'imagenet':  # 2 batches of 2 (BatchNorm), one per worker
        options += ['train_dataloader.batch_size=2', 'train_dataloader.dataset.indices=4']
    out = tool('train', kind, root, tmp_path / 'w', *options)
    assert out.returncode == 0, out.stderr[-3000:]
    assert read_records(tmp_path / 'w/bad_samples.txt') == {
        bad[0]: UNDECODABLE, bad[1]: TRUNCATED['jpg']}
    log = out.stdout + out.stderr
    for path in bad:
        assert log.count(f'bad sample skipped: {path}: ') == 1
    (logfile, ) = (tmp_path / 'w').glob('*/*.log')
    assert all(f'bad sample skipped: {path}: ' in logfile.read_text() for path in bad)


@pytest.mark.slow
def test_training_run_stops_past_the_bound(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path, 'imagenet')
    bad = first_paths('imagenet', root, 2)
    spoil(*bad)
    out = tool('train', 'imagenet', root, tmp_path / 'w', *TRAIN, 'bad_samples.max_skipped=1',
               'train_dataloader.num_workers=2')
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('error: 2 bad samples in train_dataloader, more than '
                           'bad_samples.max_skipped=1 allows: '), out.stderr[-3000:]
    assert f'{bad[0]} ({UNDECODABLE}); {bad[1]} ({TRUNCATED["jpg"]})' in last
    assert not list((tmp_path / 'w').glob('*.pth'))


@pytest.mark.slow
def test_evaluation_run_stops_naming_the_file(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path, 'imagenet')
    bad = first_paths('imagenet', root, 2, split='test')
    spoil(*bad)
    out = tool('test', 'imagenet', root, tmp_path / 'w', checkpoint=['none'])
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == (
        f'error: test_dataloader: bad sample {bad[0]}: {UNDECODABLE}. Evaluation does not skip '
        'samples (its metrics would cover another set): replace the file, or drop it from the '
        'annotation list')
