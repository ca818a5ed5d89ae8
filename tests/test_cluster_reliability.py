"""Cluster-scale failures (issue 17): preemption signals with a relaunch that resumes on its own,
a rank that fails, a disk that fills up while saving, and two runs in one work dir."""
import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO
from test_reliability import short_run_config, train_cmd

PORTS = iter(range(29641, 29700))


def popen(cmd, cwd=REPO, **env):
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PORT=str(next(PORTS)), **env))


def run(cmd, timeout=600, **env):
    proc = popen(cmd, **env)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def signal_at(cmd, marker, sig):
    """Run ``cmd`` and send ``sig`` once its output shows ``marker``; (status, output)."""
    proc = popen(cmd)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            proc.send_signal(sig)
    proc.wait(timeout=300)
    return proc.returncode, ''.join(lines)


def stopped_at(out, name):
    """The iteration a signalled run stopped after: the one in progress when the signal came
    (the tests send it once the log shows an iteration: that one or a later one on a busy
    machine)."""
    found = re.search(rf'{name} received: stopped after iteration (\d+); checkpoint \S+iter_\1'
                      r'\.pth\. Exiting with status (\d+)', out)
    assert found, out[-5000:]
    assert int(found[2]) == {'SIGUSR1': 75, 'SIGTERM': 143, 'SIGINT': 130}[name]
    return int(found[1])


def assert_same_weights(a, b):
    a = torch.load(a, weights_only=False)['state_dict']
    b = torch.load(b, weights_only=False)['state_dict']
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert a.keys() == b.keys() and not differ, f'{len(differ)} tensors differ: {differ[:3]}'


@pytest.fixture(scope='module')
def pretrain(synthetic_root, tmp_path_factory):
    """The 6-iteration pretraining config and its uninterrupted run (one process)."""
    tmp = tmp_path_factory.mktemp('preempt')
    config = short_run_config(tmp, 'pretrain', synthetic_root)
    status, out = run(train_cmd(config, tmp / 'ref'))
    assert status == 0, out[-3000:]
    return config, tmp / 'ref/iter_6.pth'


# ------------------------------------------------------------------------------ preemption
@pytest.mark.slow
@pytest.mark.parametrize('sig, status', [(signal.SIGUSR1, 75), (signal.SIGINT, 130)])
def test_signal_checkpoints_and_a_relaunch_resumes_on_its_own(pretrain, tmp_path, sig, status):
    """SIGUSR1 (time limit) and SIGINT (Ctrl-C) alike; a relaunch of the finished run says
    it is complete and trains nothing."""
    config, reference = pretrain
    work = tmp_path / 'w'
    got, out = signal_at(train_cmd(config, work), 'Iter(train) [2/6]', sig)
    assert got == status and 'Traceback' not in out, out[-3000:]
    stopped = stopped_at(out, sig.name)
    assert (work / 'last_checkpoint').read_text().strip().endswith(f'iter_{stopped}.pth')
    assert not (work / 'iter_6.pth').exists()
    got, out = run(train_cmd(config, work))  # the same command: no --resume
    assert got == 0, out[-3000:]
    assert f'auto-resume: {work}/last_checkpoint names {work}/iter_{stopped}.pth' in out
    assert_same_weights(reference, work / 'iter_6.pth')
    got, out = run(train_cmd(config, work))  # once more: nothing left to do, and it says so
    assert got == 0 and f'this run is complete: 6/6 iters done, last checkpoint ' \
        f'{work}/iter_6.pth' in out and 'Iter(train)' not in out, out[-3000:]
    assert 'continuing that run' not in out


@pytest.mark.slow
def test_resume_in_a_work_dir_without_a_run_stops(pretrain, tmp_path):
    config, _ = pretrain
    got, out = run(train_cmd(config, tmp_path / 'typo', '--resume'))
    assert got == 1, out[-3000:]
    assert out.strip().splitlines()[-1] == (
        f'error: {tmp_path}/typo: holds no run to resume (no last_checkpoint there): check the '
        '--work-dir, or drop --resume to start a new run in it')
    assert 'Iter(train)' not in out


@pytest.mark.slow
def test_sigterm_inside_an_epoch_resumes_inside_it(synthetic_root, tmp_path):
    """An epoch-based run stopped mid-epoch: the checkpoint is an iteration one, and the
    relaunch re-reads the epoch's done batches instead of training on them again."""
    config = tmp_path / 'epochs.py'
    config.write_text(
        f"_base_ = '{short_run_config(tmp_path, 'pretrain', synthetic_root)}'\n"
        "train_dataloader = dict(sampler=dict(type='DefaultSampler', shuffle=True))\n"
        "train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=2)\n"
        "default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1))\n"
        "log_processor = dict(by_epoch=True)\n")
    status, out = run(train_cmd(config, tmp_path / 'ref'))
    assert status == 0 and 'Epoch(train) [2][5/5]' in out, out[-3000:]  # 5 batches an epoch
    work = tmp_path / 'w'
    status, out = signal_at(train_cmd(config, work), 'Epoch(train) [2][1/5]', signal.SIGTERM)
    assert status == 143, out[-3000:]
    stopped = stopped_at(out, 'SIGTERM')  # iteration 6..9 is batch 1..4 of epoch 2
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth', f'iter_{stopped}.pth']
    status, out = run(train_cmd(config, work))
    assert status == 0, out[-3000:]
    assert f're-reading its first {stopped - 5} batches without training on them' in out
    assert_same_weights(tmp_path / 'ref/epoch_2.pth', work / 'epoch_2.pth')
    # the preemption checkpoint goes once the epoch's own is written
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_2.pth']


@pytest.mark.slow
def test_sigterm_to_dist_train_stops_both_ranks_and_resumes(pretrain, tmp_path):
    config, _ = pretrain
    dist = ['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir']
    status, out = run(dist + [str(tmp_path / 'ref')])
    assert status == 0, out[-3000:]
    work = tmp_path / 'w'
    status, out = signal_at(dist + [str(work)], 'Iter(train) [2/6]', signal.SIGTERM)
    assert status == 143, out[-3000:]
    stopped = stopped_at(out, 'SIGTERM')
    assert out.rstrip().endswith('run the same command again to resume')  # torchrun.sh
    assert (work / 'last_checkpoint').read_text().strip().endswith(f'iter_{stopped}.pth')
    status, out = run(dist + [str(work)])
    assert status == 0, out[-3000:]
    assert 'auto-resume' in out
    # each rank got its own random states back (they differ: random crops draw a varying
    # number of values), so the two-process run continues exactly too
    assert_same_weights(tmp_path / 'ref/iter_6.pth', work / 'iter_6.pth')


def test_slurm_train_asks_for_the_signal_and_requeues(tmp_path):
    calls = tmp_path / 'calls'
    for name, body in (('srun', f'echo "srun $@" >> {calls}; exit $SRUN_STATUS'),
                       ('scontrol', f'echo "scontrol $@" >> {calls}')):
        (tmp_path / name).write_text(f'#!/bin/sh\n{body}\n')
        (tmp_path / name).chmod(0o755)
    path = f'{tmp_path}:{os.environ["PATH"]}'

    def slurm(status, **env):
        calls.write_text('')
        out = subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'job', 'cfg.py'], cwd=REPO,
                             capture_output=True, text=True,
                             env=dict(os.environ, PATH=path, SRUN_STATUS=str(status), **env))
        return out.returncode, calls.read_text().splitlines(), out.stderr

    status, lines, err = slurm(75, SLURM_JOB_ID='4242', SIGNAL_SECONDS='300')
    assert status == 75 and '--signal=USR1@300' in lines[0].split()
    assert lines[1:] == ['scontrol requeue 4242'] and 'job 4242 requeued' in err
    status, lines, err = slurm(75)  # outside a batch job: nothing to requeue
    assert status == 75 and len(lines) == 1 and 'run the same command again' in err
    for other in (0, 1, 143):  # done, failed, cancelled or preempted (Slurm's own business)
        status, lines, _ = slurm(other, SLURM_JOB_ID='4242')
        assert status == other and len(lines) == 1


# ------------------------------------------------------------------------------ broken rank
@pytest.mark.parametrize('how', ['raise', 'kill'])
@pytest.mark.slow
def test_a_failing_rank_ends_every_rank(how, pretrain, tmp_path):
    config, _ = pretrain
    (tmp_path / 'fail_rank.py').write_text(
        "import os, signal\nfrom mmengine.dist import get_rank\n"
        "from mmengine.hooks import Hook\nfrom mmengine.registry import HOOKS\n"
        "@HOOKS.register_module()\nclass FailRank1(Hook):\n"
        "    def before_train_iter(self, runner, batch_idx, data_batch=None):\n"
        "        if get_rank() == 1 and runner.iter == 2:\n"
        f"            if {how == 'kill'}:\n"
        "                os.kill(os.getpid(), signal.SIGKILL)\n"
        "            raise RuntimeError('rank 1 broke at iteration 3')\n")
    failing = tmp_path / 'failing.py'
    failing.write_text(f"_base_ = '{config}'\ncustom_imports = dict(imports=['lomar_transfer', "
                       "'fail_rank'])\ncustom_hooks = [dict(type='FailRank1')]\n")
    start = time.time()
    status, out = run(['bash', 'tools/dist_train.sh', str(failing), '2', '--work-dir',
                       str(tmp_path / 'w')], timeout=240, PYTHONPATH=str(tmp_path))
    assert status != 0
    assert time.time() - start < 240  # no rank left waiting in a collective
    # torchrun's summary ends the output with the failing rank's error: as the root cause, or
    # (a killed rank leaves no error file, and rank 0 may see the closed connection first)
    # among the failures it lists
    summary = out[out.rindex('Failures:'):]
    cause = ('RuntimeError: rank 1 broke at iteration 3' if how == 'raise' else
             'Signal 9 (SIGKILL)')
    records = re.split(r'\n\[\d+\]:\n', summary)
    assert any('rank      : 1' in r and cause in r for r in records), summary


# ------------------------------------------------------------------------------ full disk
@pytest.mark.slow
def test_a_full_disk_while_saving_keeps_the_last_checkpoint(pretrain, tmp_path):
    config, reference = pretrain
    work = tmp_path / 'w'
    full = tmp_path / 'full_disk.py'
    full.write_text(
        "import errno, os, runpy, sys\nreal = os.fsync\n"
        "def fsync(fd):  # the disk fills up while the second checkpoint is written\n"
        "    if 'iter_4.pth' in os.readlink(f'/proc/self/fd/{fd}'):\n"
        f"        raise OSError({errno.ENOSPC}, os.strerror({errno.ENOSPC}))\n"
        "    real(fd)\n"
        "os.fsync = fsync\n"
        f"sys.argv = {train_cmd(config, work)[1:]!r}\n"
        "runpy.run_path('tools/train.py', run_name='__main__')\n")
    status, out = run([sys.executable, str(full)])
    assert status == 1 and 'Traceback' not in out
    assert out.strip().splitlines()[-1] == (
        f'error: saving checkpoint iter_4.pth failed, training stopped: could not write '
        f'{work}/iter_4.pth: No space left on device (nothing was written); free space or fix '
        f'the permissions there. last_checkpoint still names {work}/iter_2.pth; running the '
        'same command again resumes from it')
    assert sorted(p.name for p in work.iterdir() if p.is_file()) == [
        'iter_2.pth', 'last_checkpoint', config.name, 'run.lock']  # no temporary file
    assert torch.load(work / 'iter_2.pth', weights_only=False)['meta']['iter'] == 2
    status, out = run(train_cmd(config, work))
    assert status == 0, out[-3000:]
    assert_same_weights(reference, work / 'iter_6.pth')
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_6.pth']  # max_keep_ckpts=1


def test_a_failed_results_write_keeps_the_old_file(tmp_path, monkeypatch):
    from lomar_transfer.fileio import WriteError, atomic_write
    target = tmp_path / 'results.json'
    atomic_write(target, '{"old": 1}')

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', no_space)
    with pytest.raises(WriteError, match=f'could not write {target}: No space left on device '
                       r'\(its previous content is unchanged\)'):
        atomic_write(target, '{"new": 2}')
    assert target.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ['results.json']  # no temporary file left


# ------------------------------------------------------------------------------ one run per dir
@pytest.mark.slow
def test_a_second_run_in_the_same_work_dir_refuses(pretrain, synthetic_root, tmp_path):
    config, _ = pretrain
    work = tmp_path / 'w'
    first = popen(train_cmd(config, work, '--cfg-options', 'train_cfg.max_iters=100000'))
    for line in first.stdout:
        if 'Iter(train)' in line:
            break
    busy = f'error: {work} is in use by another run (training pid {first.pid} on '
    record = work / f'{Path(config).stem}.py'  # the running run's config copy, its log folder
    before = record.read_text(), sorted(p.name for p in work.iterdir() if p.is_dir())
    try:
        status, out = run(train_cmd(config, work, '--cfg-options', 'train_cfg.max_iters=7'))
        assert status == 1 and out.strip().splitlines()[-1].startswith(busy), out[-2000:]
        # refused before writing: the running run's record is as it was
        assert (record.read_text(), sorted(p.name for p in work.iterdir() if p.is_dir())) \
            == before
        status, out = run([sys.executable, 'tools/benchmark.py', '--work-dir', str(work),
                           '--methods', 'mae', '--stages', 'pretrain', '--data-root',
                           str(synthetic_root)])
        assert status == 1 and out.strip().splitlines()[-1].startswith(busy), out[-2000:]
        assert not (work / 'mae').exists()
    finally:
        first.kill()  # SIGKILL: the lock file stays, with the dead run's name in it
        first.communicate()
    assert str(first.pid) in (work / 'run.lock').read_text()
    status, out = run(train_cmd(config, work, '--cfg-options', 'auto_resume=False',
                                'train_cfg.max_iters=1'))
    assert status == 0, out[-3000:]
    assert f'taking over from a run that ended without releasing it (training pid {first.pid}' \
        in out
    assert (work / 'run.lock').read_text() == ''  # released on a normal end


@pytest.mark.slow
def test_a_training_run_refuses_a_running_benchmarks_dir(pretrain, synthetic_root, tmp_path):
    config, _ = pretrain
    work = tmp_path / 'w'
    (tmp_path / 'data').mkdir()  # the configs read data/synthetic in the working directory
    (tmp_path / 'data/synthetic').symlink_to(synthetic_root)
    bench = popen([sys.executable, str(REPO / 'tools/benchmark.py'), '--work-dir', str(work),
                   '--methods', 'mae', '--stages', 'pretrain', '--cfg-options',
                   'train_cfg.max_iters=100000'], cwd=tmp_path)
    try:
        for line in bench.stdout:
            if '[mae | pretrain] train ' in line:  # the stage is training
                break
        status, out = run(train_cmd(config, work))
        assert status == 1, out[-2000:]
        assert out.strip().splitlines()[-1].startswith(
            f'error: {work} is in use by another run (benchmark pid {bench.pid} on ')
    finally:  # passed on to the stage, which checkpoints; the benchmark exits as it did
        bench.send_signal(signal.SIGTERM)
        out, _ = bench.communicate()
    assert bench.returncode == 143, out[-2000:]
    assert 'stopped by SIGTERM after a checkpoint; run the same command again' in out
    assert (work / 'mae/pretrain/last_checkpoint').exists()


def test_every_results_file_survives_a_failed_write(tmp_path, monkeypatch):
    """The table (md, csv, json), the plots and the pictures are all written atomically: when
    the disk fills while they are rewritten, each keeps its previous content and no temporary
    file is left (matplotlib's and OpenCV's own writers would leave half a PNG)."""
    import numpy as np

    from lomar_transfer import benchmark as bm
    from lomar_transfer.fileio import WriteError
    from lomar_transfer.visualization.reconstruction import VisualizationError, save_grid

    def rows(ap):
        return bm.aggregate_seeds({0: [dict(method='mae', metrics={'APbox': ap, 'mIoU': 20.},
                                            stages={'coco': dict(seconds=6.)})]})

    bm.write_results(tmp_path, rows(30.), ['coco', 'ade'], 'synthetic')
    bm.plot_results(tmp_path, rows(30.), ['coco', 'ade'])
    panels = [np.full((8, 8, 3), v, np.uint8) for v in (0, 90, 180)]
    save_grid(str(tmp_path / 'pictures' / 'grid.png'), panels, titles=None)
    before = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
    assert {p.name for p in before} == {'results.md', 'results.csv', 'results.json',
                                        'metrics.png', 'grid.png'}

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', no_space)
    with pytest.raises(WriteError, match='No space left on device'):
        bm.write_results(tmp_path, rows(40.), ['coco', 'ade'], 'synthetic')
    with pytest.raises(WriteError, match='metrics.png: No space left'):
        bm.plot_results(tmp_path, rows(40.), ['coco', 'ade'])
    with pytest.raises(VisualizationError, match='grid.png: No space left'):
        save_grid(str(tmp_path / 'pictures' / 'grid.png'), panels[::-1], titles=None)
    assert {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()} == before


def test_ctrl_c_once_checkpoints_twice_aborts():
    """The first SIGINT is recorded (the run checkpoints after its iteration); the same Ctrl-C
    passed on by a parent within a second changes nothing; a second Ctrl-C later aborts."""
    from lomar_transfer.engine.preemption import PreemptionHook
    hook = PreemptionHook()
    hook.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # e.g. lomar-benchmark forwarding the terminal's
        assert hook.received == signal.SIGINT
        time.sleep(1.1)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # (delivered between bytecodes)
    finally:
        hook.uninstall()
