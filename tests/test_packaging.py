"""The package as a user gets it: a wheel built from the sources, installed into a fresh
environment, used from a directory outside the repository (no editable path, no repository on
sys.path): console scripts, ``lomar_transfer::`` configs from a user's own config, the stock
mmseg tools/train.py, TensorBoard event files and --show-dir pictures."""
import ast
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import cv2
import pytest

from conftest import REPO

SCRIPTS = ['lomar-train', 'lomar-test', 'lomar-benchmark', 'lomar-feature-eval', 'lomar-make-data',
           'lomar-visualize-reconstruction', 'lomar-visualize-attention', 'lomar-convert',
           'lomar-export-timm']
USER_CONFIG = """\
_base_ = ['lomar_transfer::mae/upernet_vit-tiny-p8_synthetic-ade20k.py']
model = dict(backbone=dict(init_cfg=None))
train_cfg = dict(max_iters=2)
val_cfg = val_dataloader = val_evaluator = None
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
"""


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """A fresh environment holding only the wheel; the pinned dependencies (torch, OpenMMLab)
    come from the test environment's site-packages as a plain path entry, so its .pth files
    (the editable install of this repository) are not run."""
    tmp = tmp_path_factory.mktemp('packaging')
    src = tmp / 'src'  # a copy, so that no stale build/ of the clone ends up in the wheel
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        '.venv', '.git', 'work_dirs', 'data', 'build', '*.egg-info', '__pycache__'))
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    subprocess.run([*pip, 'wheel', '--no-deps', '--no-build-isolation', '-q', str(src), '-w',
                    str(tmp / 'dist')], check=True, capture_output=True)
    wheel, = (tmp / 'dist').glob('lomar_transfer-*.whl')
    env = tmp / 'env'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(env)], check=True)
    python = env / 'bin' / 'python'
    site = Path(subprocess.check_output(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        text=True).strip())
    (site / '_test_dependencies.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    subprocess.run([python, '-m', 'pip', 'install', '--no-deps', '--no-index', '--ignore-installed',
                    '-q', str(wheel)], check=True, capture_output=True)
    user = tmp / 'user'
    user.mkdir()
    return dict(env=env, python=python, site=site, user=user)


def run(installed, *args):
    environ = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.run([str(a) for a in args], cwd=installed['user'], capture_output=True,
                          text=True, env=environ)


@pytest.mark.slow
def test_wheel_holds_every_module_and_the_configs(installed):
    package = installed['site'] / 'lomar_transfer'
    sources = {p.relative_to(REPO / 'lomar_transfer') for p in (REPO / 'lomar_transfer').rglob(
        '*.py') if '.mim' not in p.parts}
    shipped = {p.relative_to(package) for p in package.rglob('*.py') if '.mim' not in p.parts}
    assert sources <= shipped, sorted(sources - shipped)
    configs = {p.relative_to(REPO / 'configs') for p in (REPO / 'configs').rglob('*.py')}
    assert configs == {p.relative_to(package / '.mim/configs')
                       for p in (package / '.mim/configs').rglob('*.py')}
    assert (installed['site'] / 'lomar_transfer.pth').is_file()
    out = run(installed, installed['python'], '-c',
              'import sys, lomar_transfer; from mmengine.utils import get_installed_path; '
              'print(lomar_transfer.__file__); print(get_installed_path("lomar_transfer")); '
              'print(sys.path)')
    assert out.returncode == 0, out.stderr[-2000:]
    file, path, sys_path = out.stdout.splitlines()[-3:]
    assert file == str(package / '__init__.py') and path == str(package)
    assert str(REPO) not in ast.literal_eval(sys_path)
    for script in SCRIPTS:
        out = run(installed, installed['env'] / 'bin' / script, '--help')
        assert out.returncode == 0 and out.stdout.startswith('usage: '), (script, out.stderr)


@pytest.mark.slow
def test_user_config_trains_with_our_script_and_the_stock_tool(installed):
    out = run(installed, installed['env'] / 'bin' / 'lomar-make-data', '--out', 'data/synthetic',
              '--coco', '2', '1', '--ade', '2', '2', '--imagenet', '1', '1')
    assert out.returncode == 0, out.stderr[-2000:]
    (installed['user'] / 'my_config.py').write_text(USER_CONFIG)

    out = run(installed, installed['env'] / 'bin' / 'lomar-train', 'my_config.py', '--work-dir',
              'ours', '--tensorboard')
    assert out.returncode == 0, out.stderr[-3000:]
    assert (installed['user'] / 'ours/iter_2.pth').is_file()
    events, = (installed['user'] / 'ours').glob('*/vis_data/events.out.tfevents.*')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    scalars = EventAccumulator(str(events)).Reload().Tags()['scalars']
    assert 'loss' in scalars and 'lr' in scalars, scalars

    import mmseg
    stock = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'
    out = run(installed, installed['python'], stock, 'my_config.py', '--work-dir', 'stock')
    assert out.returncode == 0, out.stderr[-3000:]
    assert (installed['user'] / 'stock/iter_2.pth').is_file()

    out = run(installed, installed['env'] / 'bin' / 'lomar-test', 'my_config.py',
              'ours/iter_2.pth', '--work-dir', 'ours', '--show-dir', 'pictures')
    assert out.returncode == 0, out.stderr[-3000:]
    pictures = sorted((installed['user'] / 'pictures').rglob('*.png'))
    assert len(pictures) == 2, pictures  # one per validation image
    for picture in pictures:  # ground truth | prediction, label maps blended over the image
        name = picture.name.removeprefix('test_').split('.jpg')[0]  # test_<image>.jpg_<step>
        image, = (installed['user'] / 'data/synthetic/ade').rglob(f'validation/{name}.jpg')
        drawn, original = cv2.imread(str(picture)), cv2.imread(str(image))
        h, w = original.shape[:2]
        assert drawn.shape == (h, 2 * w, 3)
        assert abs(drawn[:, w:].astype(int) - original).mean() > 5


@pytest.mark.slow
def test_paper_plan_of_the_installed_package_prints_commands_it_has(installed):
    """A pip user has no tools/: the plan runs the installed modules through torchrun, the
    configs from the installed package, and says what each stage evaluates and reads."""
    out = run(installed, installed['env'] / 'bin' / 'lomar-benchmark', '--profile', 'paper',
              '--gpus', '0', '--methods', 'mae', '--stages', 'pretrain', 'coco')
    assert out.returncode == 0, out.stderr[-3000:]
    configs = installed['site'] / 'lomar_transfer' / '.mim' / 'configs'
    assert 'tools/dist_train.sh' not in out.stdout and 'tools/dist_test.sh' not in out.stdout
    assert (f'python -m torch.distributed.run --nproc_per_node=16 -m lomar_transfer.cli.train '
            f'{configs}/mae/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py --launcher pytorch '
            '--work-dir work_dirs/benchmark/mae/coco') in out.stdout
    assert ('-m lomar_transfer.cli.test '
            f'{configs}/mae/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py '
            'work_dirs/benchmark/mae/coco/iter_184375.pth --launcher pytorch') in out.stdout
    assert '  reads: data/coco/' in out.stdout and '  reads: data/imagenet' in out.stdout


RECIPE = REPO / 'docs/use_in_your_project.sh'


@pytest.mark.slow
def test_the_readme_plug_in_recipe_runs_as_printed(tmp_path):
    """docs/use_in_your_project.sh, whose steps the README prints verbatim, run as a user runs
    it: a fresh environment seeing the pinned stack, the wheel without dependencies, a config of
    one line, our commands and mmseg's own train.py."""
    readme = (REPO / 'README.md').read_text()
    steps = RECIPE.read_text().split('set -euo pipefail\n')[1]
    assert steps in readme  # the README prints the script's steps, not a variant of them
    environ = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    out = subprocess.run(['bash', str(RECIPE), str(tmp_path / 'proj')], cwd=REPO,
                         capture_output=True, text=True, env=environ)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # a config reached through lomar_transfer:: builds the stock parts in their own scope
    assert 'Failed to search registry' not in out.stdout + out.stderr
    assert 'pkg_resources is deprecated' not in out.stdout + out.stderr
    proj = tmp_path / 'proj'
    assert (proj / 'work_dirs/mine/iter_2.pth').is_file()
    assert (proj / 'work_dirs/stock/iter_2.pth').is_file()
    assert len(list((proj / 'pictures').rglob('*.png'))) == 2
    site = subprocess.check_output([proj / 'env/bin/python', '-c',
                                    'import lomar_transfer; print(lomar_transfer.__file__)'],
                                   text=True, env=environ, cwd=proj)
    assert site.startswith(str(proj / 'env'))  # the wheel, not the clone
