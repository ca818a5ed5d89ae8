"""Anything that is not a checkpoint (or not this model's), given to tools/test.py, --resume,
load_from, init_cfg=Pretrained or the converters: one line ``error: <path>: <what is wrong>``, no
traceback, a non-zero exit and nothing written.

Every kind goes through the shared functions in-process; each entry point runs as a command
with one or two kinds."""
import os
import subprocess
import sys
import zipfile

import pytest
import torch
from mmengine.runner.checkpoint import load_checkpoint

from conftest import REPO, format2_names, weights
from lomar_transfer.engine.runner import check_fit
from lomar_transfer.fileio import CheckpointError, read_checkpoint
from lomar_transfer.models import VisionTransformer

TINY = dict(embed_dims=32, depth=2, num_heads=2, mlp_hidden_dims=64)
TRANSFER = 'configs/mae/upernet_vit-tiny-p8_synthetic-ade20k.py'


class RunsCode:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


def tiny_vit(init_cfg=None, **arch):
    return VisionTransformer(arch=dict(TINY, **arch), img_size=32, patch_size=8,
                             init_cfg=init_cfg)


def make(kind, tmp_path):
    """A file of the given kind in ``tmp_path``; its path."""
    path = tmp_path / f'{kind}.pth'
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'text':
        path.write_text('<!DOCTYPE html><html><body>404 Not Found</body></html>\n')
    elif kind == 'random':
        path.write_bytes(bytes(range(7, 256)) * 20)
    elif kind == 'zip':
        with zipfile.ZipFile(path, 'w') as z:
            z.writestr('weights/readme.txt', 'not a torch file')
    elif kind in ('truncated', 'truncated_legacy'):
        torch.save({'state_dict': tiny_vit().state_dict()}, path,
                   _use_new_zipfile_serialization=kind == 'truncated')
        path.write_bytes(path.read_bytes()[:1000])
    elif kind == 'list':
        torch.save([1, 2, 3], path)
    elif kind == 'number':
        torch.save(3.5, path)
    elif kind == 'code':
        torch.save({'state_dict': {}, 'x': RunsCode(tmp_path / 'pwned')}, path)
    elif kind == 'resnet':  # another model's weights: a ResNet-like stem and classifier
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                  torch.nn.Linear(8, 10))
        torch.save({'state_dict': net.state_dict()}, path)
    elif kind == 'wider':  # a ViT of another width, as a whole model (backbone.*) would hold it
        wider = tiny_vit(embed_dims=64, num_heads=4).state_dict()
        torch.save({'state_dict': {f'backbone.{k}': v for k, v in wider.items()}}, path)
    elif kind != 'missing':
        raise ValueError(kind)
    return path


# the kinds read_checkpoint refuses, and what its message says
UNREADABLE = {
    'missing': 'not found',
    'empty': r'is empty \(0 bytes\): an interrupted download or copy',
    'text': r"is a text file, not a checkpoint \(it starts with '<!DOCTYPE html>",
    'random': r'is not a PyTorch checkpoint: neither a zip archive .* nor a pickle',
    'zip': r"is a zip archive but not a PyTorch checkpoint \(no \*/data.pkl; it holds "
           r"\['weights/readme.txt'\]\)",
    'truncated': r'is truncated \(1000 bytes, the end of its zip archive is missing\)',
    'truncated_legacy': r'is truncated or corrupted \(1000 bytes; a PyTorch checkpoint of the '
                        'pre-1.6 format',
    'list': r'holds \[1, 2, 3\] \(list\), not weights',
    'number': r'holds 3.5 \(float\), not weights',
    'code': 'checkpoint references posix.system, which lomar_transfer does not load',
}


@pytest.mark.parametrize('kind', UNREADABLE)
def test_each_kind_of_unreadable_file_is_named(kind, tmp_path):
    path = make(kind, tmp_path)
    with pytest.raises(CheckpointError, match=f'^{path}: {UNREADABLE[kind]}') as e:
        read_checkpoint(path)
    assert '\n' not in str(e.value)
    assert not (tmp_path / 'pwned').exists()
    with pytest.raises(CheckpointError, match=f'^{path}: {UNREADABLE[kind]}'):
        tiny_vit(init_cfg=weights(path)).init_weights()  # the init_cfg=Pretrained path


@pytest.mark.parametrize('kind, message', [
    ('resnet', r"does not fit this model \(another model's weights\? .*\): 0 of its 29 tensors "
               r'load; 29 are missing, e.g. cls_token, .*; it has instead e.g. 0.weight'),
    ('wider', r'2 of its 29 tensors load; 27 have another shape, e.g. cls_token: checkpoint '
              r'\[1, 1, 64\] vs model \[1, 1, 32\]')])
def test_another_models_weights_are_refused(kind, message, tmp_path):
    """What mmengine's strict=False load (load_from, resume, test) only warns about."""
    path = make(kind, tmp_path)
    if kind == 'wider':  # the backbone's own state dict
        torch.save(tiny_vit(embed_dims=64, num_heads=4).state_dict(), path)
    model = tiny_vit()
    with pytest.raises(CheckpointError, match=f'^{path}: .*{message}'):
        check_fit(model, lambda: load_checkpoint(model, str(path)), path)
    with pytest.raises(CheckpointError, match=f'^{path}: '):  # the init_cfg=Pretrained path
        tiny_vit(init_cfg=weights(path)).init_weights()


def test_own_and_migrated_weights_fit(tmp_path):
    """The check counts what loads after the model's own key migrations (format 2 names)."""
    src = tiny_vit()
    torch.save(format2_names(src.state_dict(), prefix=''), tmp_path / 'old.pth')
    model = tiny_vit()
    check_fit(model, lambda: load_checkpoint(model, str(tmp_path / 'old.pth')),
              tmp_path / 'old.pth', exact=True)
    torch.testing.assert_close(model.layers[1].mlp.fc2.weight, src.layers[1].mlp.fc2.weight)
    # a resume needs every tensor: one missing is refused
    sd = src.state_dict()
    del sd['layers.1.mlp.fc2.weight']
    torch.save(sd, tmp_path / 'partial.pth')
    with pytest.raises(CheckpointError, match='cannot be resumed.*1 are missing, e.g. '
                       'layers.1.mlp.fc2.weight'):
        check_fit(model, lambda: load_checkpoint(model, str(tmp_path / 'partial.pth')),
                  tmp_path / 'partial.pth', exact=True)
    check_fit(model, lambda: load_checkpoint(model, str(tmp_path / 'partial.pth')),
              tmp_path / 'partial.pth')  # fine for load_from


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True)


def one_line_error(out, path, message):
    log = out.stdout + out.stderr
    assert out.returncode != 0, log[-3000:]
    assert 'Traceback' not in log, log[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: {path}: ') and message in last, last


@pytest.fixture
def transfer_config(tmp_path, synthetic_root):
    data = f'{synthetic_root}/ade/ADEChallengeData2016'
    path = tmp_path / 'transfer.py'
    path.write_text(f"_base_ = '{REPO / TRANSFER}'\n"
                    f"train_dataloader = dict(dataset=dict(data_root='{data}'))\n"
                    f"val_dataloader = dict(dataset=dict(data_root='{data}'))\n"
                    'test_dataloader = val_dataloader\n'
                    'model = dict(backbone=dict(init_cfg=None))\n'
                    'train_cfg = dict(max_iters=1)\n')
    return path


@pytest.mark.parametrize('kind, message', [('truncated', 'is truncated (1000 bytes'),
                                           ('wider', "another model's weights")])
@pytest.mark.slow
def test_tools_test(kind, message, transfer_config, tmp_path):
    path = make(kind, tmp_path)
    out = run('tools/test.py', transfer_config, path, '--work-dir', tmp_path / 'work',
              '--out', tmp_path / 'm.json')
    one_line_error(out, path, message)
    assert not (tmp_path / 'm.json').exists()


@pytest.mark.parametrize('kind, message', [('empty', 'is empty (0 bytes)'),
                                           ('resnet', 'cannot be resumed')])
@pytest.mark.slow
def test_resume_from_a_bad_last_checkpoint(kind, message, transfer_config, tmp_path):
    path = make(kind, tmp_path)
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text(str(path))
    out = run('tools/train.py', transfer_config, '--work-dir', work, '--resume')
    one_line_error(out, path, message)
    assert f'{work}/last_checkpoint names it' in out.stderr
    assert (work / 'last_checkpoint').read_text() == str(path)
    assert not list(work.rglob('*.pth'))


@pytest.mark.parametrize('option, kind, message', [
    ('load_from', 'text', 'is a text file'),
    ('model.backbone.init_cfg.checkpoint', 'random', 'is not a PyTorch checkpoint')])
@pytest.mark.slow
def test_train_from_a_bad_file(option, kind, message, transfer_config, tmp_path):
    path = make(kind, tmp_path)
    out = run('tools/train.py', transfer_config, '--work-dir', tmp_path / 'work',
              '--cfg-options', f'{option}={path}')
    one_line_error(out, path, message)
    assert not list((tmp_path / 'work').rglob('*.pth'))


@pytest.mark.parametrize('tool, kind, message', [
    ('to_lomar_vit', 'zip', 'is a zip archive but not a PyTorch checkpoint'),
    ('to_lomar_vit', 'list', 'not weights'),
    ('to_timm', 'resnet', 'is this a ViT checkpoint?')])
@pytest.mark.slow
def test_converters(tool, kind, message, tmp_path):
    path = make(kind, tmp_path)
    out = run(f'tools/model_converters/{tool}.py', path, tmp_path / 'out.pth')
    one_line_error(out, path, message)
    assert not (tmp_path / 'out.pth').exists()
