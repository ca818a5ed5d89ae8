"""tools/install.sh: a second run changes nothing; the mmcv wheel cache is reused, a prebuilt
wheel with a wrong checksum is dropped (then mmcv is built), an interrupted build leaves nothing
half-made in the cache and the next run builds again.

The mmcv paths run the real script, copied into a temporary clone (so its .venv and cache are
temporary too), against a fake interpreter: ``FAKE_PYTHON`` below stands for the venv's python and
its pip, installs "wheels" by recording their content, and "builds" mmcv in a fraction of a second
(or hangs, to be interrupted). Nothing touches the shared .venv but the first test, which only
takes the script's fast path."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

MMCV = '2.1.0'
WHEEL = f'mmcv-{MMCV}-cp311-cp311-linux_{os.uname().machine}.whl'
KEY = f'mmcv-{MMCV}_torch-2.14.1_cp311_cpu_{os.uname().machine}'

# The venv's python as install.sh calls it, standing in for python + pip. State under $FAKE_STATE:
# calls.log (one line per call), mmcv (content of the installed "wheel"), builds.log.
# A wheel is good when its content starts with 'good' (the ops check passes), else broken.
# FAKE_BUILD: 'ok' (default) writes a good wheel; 'hang' writes half of one, then sleeps.
FAKE_PYTHON = r'''#!{python} -S
import os, sys, tarfile, io, time
state = os.environ['FAKE_STATE']
def note(name, line):
    with open(os.path.join(state, name), 'a') as f:
        f.write(line + '\n')
def read(name):
    p = os.path.join(state, name)
    return open(p).read() if os.path.exists(p) else ''
args = sys.argv[1:]
note('calls.log', ' '.join(args))
mmcv_good = read('mmcv').startswith('good')
if args[:1] == ['-c']:
    code = args[1]
    if 'torch' in code:
        print('2.14.1 cpu')
    elif 'sysconfig' in code:
        print(os.path.join(state, 'site'))
    elif 'version_info' in code:
        print('3.11')
    sys.exit(0)
if args[:1] == ['-']:  # a script on stdin: the ops check (mmcv_ok) or the import check
    code = sys.stdin.read()
    if 'mmcv.__version__' in code:
        sys.exit(0 if mmcv_good and args[1:] == ['{mmcv}'] else 1)
    note('import_checks.log', os.getcwd())
    sys.exit(0 if mmcv_good and read('editable') else 1)
if args[:2] != ['-m', 'pip']:
    sys.exit('fake python: unexpected call ' + ' '.join(args))
cmd, rest = args[2], args[3:]
if cmd == 'install':
    for a in rest:
        if a.endswith('.whl'):
            open(os.path.join(state, 'mmcv'), 'w').write(open(a).read())
            note('installed.log', a)
    if '-e' in rest:
        open(os.path.join(state, 'editable'), 'w').write('yes')
elif cmd == 'uninstall':
    if os.path.exists(os.path.join(state, 'mmcv')):
        os.remove(os.path.join(state, 'mmcv'))
elif cmd == 'download':  # the sdist: a setup.py with mmcv's C++ flag and two op sources
    dest = rest[rest.index('-d') + 1]
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(os.path.join(dest, 'mmcv-{mmcv}.tar.gz'), 'w:gz') as tar:
        for name, text in [('setup.py', "args = ['-std=c++17']\n"),
                           ('mmcv/ops/csrc/pytorch/nms.cpp', ''),
                           ('mmcv/ops/csrc/pytorch/cpu/nms_cpu.cpp', '')]:
            data = text.encode()
            info = tarfile.TarInfo('mmcv-{mmcv}/' + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
elif cmd == 'wheel':
    dest = rest[rest.index('-w') + 1]
    assert '-std=c++20' in open('setup.py').read(), 'the C++20 patch was not applied'
    note('builds.log', os.environ.get('FAKE_BUILD', 'ok'))
    os.makedirs(dest, exist_ok=True)
    wheel = os.path.join(dest, '{wheel}')
    open('nms.o', 'w').close()
    if os.environ.get('FAKE_BUILD') == 'hang':
        open(wheel, 'w').write('half a wheel')
        open(os.path.join(state, 'build.pid'), 'w').write(str(os.getpid()))
        time.sleep(600)
    open(wheel, 'w').write('good wheel built by the fake pip')
else:
    sys.exit('fake pip: unexpected command ' + cmd)
'''


@pytest.fixture
def clone(tmp_path):
    """A temporary clone holding what install.sh reads, with a fake interpreter in its .venv and
    a fast `sleep` (the build monitor's 20 s naps). Returns run(**env) -> CompletedProcess."""
    root = tmp_path / 'clone'
    (root / 'tools').mkdir(parents=True)
    shutil.copy(REPO / 'tools/install.sh', root / 'tools/install.sh')
    shutil.copytree(REPO / 'requirements', root / 'requirements')
    for name in ('setup.py', 'lomar_transfer.pth'):
        shutil.copy(REPO / name, root / name)
    state = tmp_path / 'state'
    (state / 'site').mkdir(parents=True)
    fake = tmp_path / 'fake_python'
    fake.write_text(FAKE_PYTHON.replace('{python}', sys.executable).replace('{mmcv}', MMCV)
                    .replace('{wheel}', WHEEL))
    fake.chmod(0o755)
    (root / '.venv/bin').mkdir(parents=True)
    (root / '.venv/bin/python').symlink_to(fake)
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'sleep').write_text('#!/bin/sh\nexec /bin/sleep 0.05\n')
    (bin_dir / 'sleep').chmod(0o755)
    cache = tmp_path / 'cache'
    base_env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', FAKE_STATE=str(state),
                    LOMAR_WHEEL_CACHE=str(cache), MAX_JOBS='1')
    base_env.pop('LOMAR_PREBUILT_WHEELS', None)

    class Clone:
        pass
    c = Clone()
    c.root, c.state, c.cache, c.wheel = root, state, cache, cache / KEY / WHEEL
    c.env = lambda **kw: {**base_env, **kw}

    def run(**env):
        return subprocess.run(['bash', 'tools/install.sh'], cwd=root, capture_output=True,
                              text=True, env=c.env(**env), timeout=300)
    c.run = run
    c.builds = lambda: (state / 'builds.log').read_text().split() if (
        state / 'builds.log').exists() else []
    c.installed = lambda: (state / 'mmcv').read_text() if (state / 'mmcv').exists() else None

    def new_venv():  # a fresh environment: no stamp, no mmcv (the cache stays)
        (root / '.venv/.lomar_transfer_installed').unlink(missing_ok=True)
        for name in ('mmcv', 'editable', 'installed.log'):
            (state / name).unlink(missing_ok=True)
    c.new_venv = new_venv
    return c


def check(out):
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_second_install_is_a_no_op():
    """The shared .venv is up to date, so the script takes its fast path. (Checked first: a stale
    stamp would make the script re-install into the .venv everybody uses.)"""
    stamp = REPO / '.venv/.lomar_transfer_installed'
    key = subprocess.run(
        'cat requirements/*.txt setup.py tools/install.sh | sha256sum | cut -c1-16', shell=True,
        cwd=REPO, capture_output=True, text=True).stdout.strip()
    if stamp.read_text().strip() != key:
        pytest.fail(f'{stamp} is stale (requirements, setup.py or tools/install.sh changed): run '
                    'bash tools/install.sh, then this test')
    before = stamp.stat().st_mtime_ns
    out = subprocess.run(['bash', 'tools/install.sh'], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'up to date' in out.stdout
    assert stamp.stat().st_mtime_ns == before


def test_wheel_cache_is_reused(clone):
    log = check(clone.run())
    assert clone.builds() == ['ok'] and 'compiling mmcv ops' in log
    assert clone.wheel.read_text().startswith('good') and clone.installed().startswith('good')
    assert 'done in' in log
    assert check(clone.run()).count('up to date') == 1 and clone.builds() == ['ok']

    clone.new_venv()  # another venv on the same machine: the cached wheel, no build
    log = check(clone.run())
    assert f'using cached wheel {clone.wheel}' in log and 'compiling' not in log
    assert clone.builds() == ['ok'] and clone.installed().startswith('good')

    clone.new_venv()  # a cached wheel that fails the ops check (another torch ABI): rebuilt
    clone.wheel.write_text('broken wheel')
    log = check(clone.run())
    assert 'does not work with this torch' in log and clone.builds() == ['ok', 'ok']
    assert clone.wheel.read_text().startswith('good') and clone.installed().startswith('good')
    assert not list(clone.cache.rglob('.*'))  # no build folder, no .partial file


@pytest.mark.parametrize('right', [False, True], ids=['wrong-checksum', 'right-checksum'])
def test_prebuilt_wheel_is_checked(clone, tmp_path, right):
    prebuilt = tmp_path / 'prebuilt'
    prebuilt.mkdir()
    (prebuilt / WHEEL).write_text('good prebuilt wheel')
    digest = hashlib.sha256((prebuilt / WHEEL).read_bytes()).hexdigest()
    listed = digest if right else hashlib.sha256(b'another file').hexdigest()
    (prebuilt / 'SHA256SUMS').write_text(f'{listed}  {WHEEL}\n')
    log = check(clone.run(LOMAR_PREBUILT_WHEELS=str(prebuilt)))
    if right:  # installed and kept in the cache, no build
        assert clone.builds() == [] and clone.installed() == 'good prebuilt wheel'
        assert clone.wheel.read_text() == 'good prebuilt wheel'
        return
    # dropped with a message that says why and what happens instead; then built and cached
    line = next(ln for ln in log.splitlines() if 'checksum mismatch' in ln)
    assert str(prebuilt / WHEEL) in line and digest in line and listed in line, line
    assert 'building' in line, line
    assert clone.builds() == ['ok'] and clone.installed().startswith('good wheel built')
    assert clone.wheel.read_text().startswith('good wheel built')
    assert (prebuilt / WHEEL).read_text() == 'good prebuilt wheel'  # the prebuilt dir untouched


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too (the test's own child until reaped)
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.1)


@pytest.mark.parametrize('how', ['ctrl-c', 'kill'])
def test_interrupted_build_leaves_nothing_and_builds_again(clone, how):
    """Ctrl-C (SIGINT to the terminal's process group) or `kill` (SIGTERM to the script) during
    the mmcv build: the compiler stops, the half-made build folder goes, no wheel is cached; the
    next run builds again. A leftover build folder from a run killed outright (SIGKILL) is
    removed once it is a day old."""
    clone.cache.mkdir()
    stale = clone.cache / f'.build-{KEY}.killed'
    (stale / 'dist').mkdir(parents=True)
    day_ago = time.time() - 25 * 3600
    os.utime(stale, (day_ago, day_ago))
    fresh = clone.cache / f'.build-{KEY}.other'  # another install building right now
    fresh.mkdir()
    proc = subprocess.Popen(['bash', 'tools/install.sh'], cwd=clone.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=clone.env(FAKE_BUILD='hang'), start_new_session=True)
    build_pid = None
    try:
        wait_for(lambda: (clone.state / 'build.pid').exists() or proc.poll() is not None, 120,
                 'the build to start')
        assert proc.poll() is None, proc.stdout.read()
        build_pid = int((clone.state / 'build.pid').read_text())
        building = [p for p in clone.cache.iterdir() if p.name.startswith('.build-')
                    and p not in (stale, fresh)]
        assert len(building) == 1 and list(building[0].rglob(WHEEL))  # half a wheel in there
        assert not stale.exists() and fresh.exists()
        if how == 'ctrl-c':
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        log = proc.communicate(timeout=60)[0]
        assert proc.returncode != 0, log
        wait_for(lambda: not alive(build_pid), 30, 'the build to stop')
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if build_pid and alive(build_pid):
            os.kill(build_pid, signal.SIGKILL)
    assert not building[0].exists(), log
    assert sorted(p.name for p in clone.cache.rglob('*')) == [fresh.name], log
    assert clone.installed() is None

    log = check(clone.run())  # the next run builds again and caches the wheel
    assert clone.builds() == ['hang', 'ok'] and 'compiling mmcv ops' in log
    assert clone.wheel.read_text().startswith('good') and clone.installed().startswith('good')


def test_mmcv_compiled_ops_give_right_answers():
    import torch
    import torchvision
    from mmcv.ops import nms, roi_align
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    dets, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feats = torch.randn(2, 4, 16, 16)
    rois = torch.tensor([[0, 1.5, 2., 9., 12.], [1, 0., 0., 15., 15.]])
    ours = roi_align(feats, rois, (7, 7), 0.5, 2, 'avg', True)
    ref = torchvision.ops.roi_align(feats, rois, (7, 7), 0.5, 2, aligned=True)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_health_check_imports_from_outside_the_clone(clone):
    """In the clone's root `import lomar_transfer` finds the source folder even when the package
    is not installed (then training fails on _lomar_transfer_scope): the check that decides
    "up to date" runs elsewhere, and imports what the install adds."""
    check(clone.run())
    check(clone.run())  # the fast path: its check passes
    dirs = (clone.state / 'import_checks.log').read_text().split()
    assert len(dirs) >= 2 and not any(d.startswith(str(clone.root)) for d in dirs), dirs
    assert '_lomar_transfer_scope' in (REPO / 'tools/install.sh').read_text().split(
        'env_works() {')[1].split('\n}')[0]
