"""The transfer benchmark suite, one command: pretrain -> COCO Mask R-CNN -> ADE20K UperNet
(-> ImageNet fine-tune / linear probe) for LoMaR, MAE and CAE, then a results table and plots.

    lomar-benchmark                        # embedded synthetic data, CPU minutes
    lomar-benchmark --methods mae --stages coco ade --pretrained mae_pretrain_vit_base.pth
    lomar-benchmark --profile paper        # full ViT-B recipes (GPU launch commands)
    lomar-benchmark --tensorboard          # also TensorBoard event files in every stage
    (python tools/benchmark.py ... in a clone of the repository)

Every stage is a normal ``lomar-train`` + ``lomar-test`` run (lomar_transfer/cli/) of a config
under ``configs/{method}/`` in ``WORK_DIR/{method}/{stage}/`` (logs, checkpoints, ``result.json``).
Finished stages are skipped; interrupted ones resume from their last checkpoint (a stage stopped
after its training only evaluates again). Transfer stages start from --pretrained, else from the
method's pretrain stage: of this run, or finished before in WORK_DIR. Outputs:
``WORK_DIR/results.{md,csv,json}``, ``loss_curves.png``, ``metrics.png``.
"""
import argparse
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from mmengine.config import Config

from .. import benchmark as bm
from .. import dry_run
from ..fileio import atomic_write
from ..engine.preemption import EXIT_STATUS
from ..engine.work_dir_lock import WorkDirLock
from ..errors import one_line_errors

TRAIN = 'lomar_transfer.cli.train'
PROGRESS = re.compile(r'Iter\((train|test|val)\)\s*\[\s*(\d+)/(\d+)\].*?(?:eta: (\S+))?\s')
LOSS = re.compile(r'\sloss: ([\d.]+|nan|inf)')
# in a stage's folder once its training finished (holds the final checkpoint's path): a run
# interrupted while evaluating it evaluates again without training again
TRAINED = 'train_done'


PREEMPTED = {status: sig.name for sig, status in EXIT_STATUS.items()}
# configs/_base_/datasets/synthetic_*.py and _base_/synthetic_pretrain_cpu.py read their root from
# this variable (mmengine's '{{$NAME:default}}' substitution), default data/synthetic
DATA_ROOT_VAR = 'LOMAR_DATA_ROOT'


@contextmanager
def passing_signals_on(suite):
    """SIGTERM / SIGUSR1 go on to the running stage, which checkpoints and exits with its
    preemption status; between stages the suite stops before the next one. (Sent to this process
    alone, a signal would otherwise kill it and orphan the stage.)"""
    def handler(signum, frame):
        suite.stop = suite.stop or signal.Signals(signum)
        if suite.child is not None:
            suite.child.send_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in EXIT_STATUS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# every --methods entry: the MIM methods, the baseline, the release sources
METHOD_NAMES = bm.METHODS + bm.BASELINES + bm.RELEASES


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--profile', choices=['synthetic', 'paper'], default='synthetic',
                   help='synthetic: CPU-sized configs on the embedded data (default); paper: '
                   'the ViT-B recipes on real COCO / ADE20K / ImageNet')
    p.add_argument('--protocol', choices=list(bm.DENSE_PROTOCOLS), default='default',
                   help="paper profile, COCO and ADE20K stages: 'default' runs ViTDet's COCO "
                   "and mmseg's MAE ADE20K recipes, 'cae' CAE's own recipes (stage folders "
                   'coco-cae, ade-cae)')
    p.add_argument('--methods', nargs='+', default=list(bm.METHODS),
                   choices=list(METHOD_NAMES), metavar='METHOD',
                   help=f'pretrained here: {", ".join(bm.PRETRAINED_HERE)}; the '
                   f'no-pretraining baseline: {", ".join(bm.BASELINES)}; from a released '
                   f'checkpoint (--pretrained NAME=PATH): {", ".join(bm.RELEASES)} '
                   f'(default: {" ".join(bm.METHODS)})')
    p.add_argument('--stages', nargs='+', default=list(bm.DEFAULT_STAGES),
                   choices=list(bm.STAGES), metavar='STAGE',
                   help='pretrain (the method\'s own pretraining), coco (Mask R-CNN: APbox, '
                   'APmask), ade (UperNet: mIoU), finetune / linear (ImageNet top-1), maect '
                   '(MAE-CT tuning, then frozen-feature k-NN / linear / low-shot / clustering) '
                   f'(default: {" ".join(bm.DEFAULT_STAGES)})')
    p.add_argument('--pretrained', nargs='+', default=[], metavar='[NAME=]PATH',
                   help='benchmark these checkpoints instead of pretraining: NAME=PATH per '
                   f'method (needed for the release sources {", ".join(bm.RELEASES)}), or one '
                   'PATH with one --methods entry. Any format of lomar_transfer/sources, '
                   'mmpretrain or ours (mmpretrain\'s MAE stores its fixed position table in '
                   "CAE's order: add --cfg-options model.backbone.sincos_order=cae)")
    p.add_argument('--work-dir', default='work_dirs/benchmark',
                   help='outputs: WORK_DIR/<method>/<stage>/ per stage (logs, checkpoints, '
                   'result.json), WORK_DIR/results.{md,csv,json} and plots (default: '
                   'work_dirs/benchmark)')
    p.add_argument('--data-root',
                   help='synthetic profile: where the embedded data is read, and made if '
                   f'missing; the stages get it as ${DATA_ROOT_VAR}, which the synthetic '
                   f'dataset configs read (default: ${DATA_ROOT_VAR}, else data/synthetic). '
                   'Paper dry run: the folder that holds coco/, ade/ADEChallengeData2016/ and '
                   "imagenet/ (default: the configs' own data/)")
    p.add_argument('--gpus', type=int, help='GPUs per stage (default: all visible; 0 = CPU)')
    p.add_argument('--no-untrained', action='store_true',
                   help='skip evaluating each transfer model before training')
    p.add_argument('--seeds', nargs='+', type=int, default=[0],
                   help='run every stage once per seed (pretraining and transfer seed; '
                   'WORK_DIR/seed<N>/ with several): the table shows mean ± standard deviation '
                   'and which method differences exceed the noise (default: one seed, 0)')
    p.add_argument('--tensorboard', action='store_true',
                   help='training stages also log to TensorBoard (STAGE/<timestamp>/vis_data)')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='passed to every stage, e.g. train_cfg.max_iters=10')
    dry = p.add_argument_group(
        'dry run (--profile paper --dry-run): each stage\'s paper config, unchanged but for the '
        'iterations, a data subset, the batch per device and AMP off on CPU, trained, handed '
        'on and evaluated in minutes; a table of the data found, the checkpoint loaded, loss, '
        'metric, s/iter, peak memory and the full schedule\'s projected cost, in '
        'WORK_DIR/dry-run/dry_run.md')
    dry.add_argument('--dry-run', action='store_true')
    dry.add_argument('--dry-run-iters', type=int, default=2, metavar='N',
                     help='training iterations per stage (default 2)')
    dry.add_argument('--dry-run-images', type=int, default=2, metavar='M',
                     help='validation images each stage is evaluated on (default 2)')
    dry.add_argument('--dry-run-batch', type=int, default=2, metavar='B',
                     help='training images per device at most (default 2)')
    args = p.parse_args(argv)
    if args.dry_run and args.profile != 'paper':
        p.error('--dry-run checks the paper profile: add --profile paper')
    if args.data_root is None and args.profile == 'synthetic':
        args.data_root = os.environ.get(DATA_ROOT_VAR, 'data/synthetic')
    args.pretrained = parse_pretrained(p, args.pretrained, args.methods)
    if all(m in args.pretrained or m not in bm.PRETRAINED_HERE for m in args.methods):
        args.stages = [s for s in args.stages if not bm.STAGES[s].pretrains]
    return args


def parse_pretrained(p, items, methods):
    """--pretrained as {method: absolute path}; every release source needs one."""
    pairs = {}
    for item in items:
        name, sep, path = item.partition('=')
        if not (sep and name in METHOD_NAMES):
            if len(items) != 1 or len(methods) != 1:
                p.error(f'--pretrained {item}: give NAME=PATH for each method, or one PATH '
                        'with exactly one --methods entry (the checkpoint\'s architecture)')
            name, path = methods[0], item
        if name not in methods:
            p.error(f'--pretrained {item}: {name} is not among --methods')
        if name in bm.BASELINES:
            p.error(f'--pretrained with --methods {name}: {name} is the baseline without '
                    'pretrained weights; give the checkpoint\'s architecture or source (e.g. '
                    'mae, cae, dino)')
        full = Path(path).expanduser()
        if not full.is_file():  # one line (no usage: the options are fine, the path is not)
            p.exit(2, f'{p.prog}: error: --pretrained {path}: '
                   + ('is a directory, not a checkpoint file\n' if full.is_dir() else
                      'file not found (check the path)\n'))
        # absolute: the stages, result.json and a resumed run from elsewhere name the same file
        pairs[name] = str(full.resolve())
    missing = [m for m in methods
               if m in bm.RELEASES and m not in bm.PRETRAINED_HERE and m not in pairs]
    if missing:
        p.error(f'{", ".join(missing)}: benchmarked from the released checkpoint (not '
                f'pretrained here): add --pretrained {missing[0]}=PATH')
    return pairs


def gpu_count(requested):
    if requested is not None:
        return requested
    import torch
    return torch.cuda.device_count()


# a clone of the repository has tools/dist_train.sh; an installed wheel has the modules only
CLONE = (bm.CONFIG_ROOT.parent / 'tools' / 'dist_train.sh').is_file()


def launch(kind, config, gpus, checkpoint=None):
    """The command that trains ``config`` (or tests ``checkpoint`` of it) on ``gpus`` GPUs, as
    this install can: the clone's tools/dist_{train,test}.sh, else torchrun on the installed
    modules."""
    config = bm.show_path(config)
    ckpt = f' {checkpoint}' if checkpoint else ''
    if CLONE:
        return f'tools/dist_{kind}.sh {config}{ckpt} {gpus}'
    return (f'python -m torch.distributed.run --nproc_per_node={gpus} -m '
            f'lomar_transfer.cli.{kind} {config}{ckpt} --launcher pytorch')


def data_paths(config):
    """The data roots a stage config reads (its train and test sets)."""
    from ..datasets.checks import _datasets
    cfg = Config.fromfile(str(config))
    roots = [ds.get('data_root') for name in ('train_dataloader', 'test_dataloader')
             if cfg.get(name) for ds in _datasets(cfg[name].dataset)]
    return list(dict.fromkeys(r for r in roots if r))


def write_dry_config(where, cfg, path, changes):
    """A dry config as the stage runs it, and what it changed from ``path``, its paper config."""
    where.mkdir(parents=True, exist_ok=True)
    config = where / 'dry_run_config.py'
    cfg.dump(str(config))
    atomic_write(where / 'changes.txt', f'{bm.show_path(path)}\n'
                 + ''.join(f'  {c}\n' for c in changes))
    return config


class Suite:

    def __init__(self, args):
        self.args = args
        self.work_dir = Path(args.work_dir).resolve()
        self.py = sys.executable
        self.gpus = gpu_count(args.gpus)
        self.tracking = ['--tensorboard'] if args.tensorboard else []
        self.child = self.stop = None  # the running stage; a preemption signal received
        self.env = None  # the stages' environment: the data root of the synthetic profile
        self.pretrained = {}  # (seed, method) -> the checkpoint its transfer stages start from
        if args.profile == 'synthetic':
            self.env = dict(os.environ, **{DATA_ROOT_VAR: str(Path(args.data_root).resolve())})
        self.seeds = list(dict.fromkeys(args.seeds))
        self.jobs = [(seed, m, s) for seed in self.seeds for m in args.methods
                     for s in args.stages
                     if (m not in bm.BASELINES or bm.STAGES[s].for_scratch)
                     and not (bm.STAGES[s].pretrains and (m in args.pretrained
                                                          or m not in bm.PRETRAINED_HERE))]

    # ------------------------------------------------------------------ one stage
    def train_cmd(self, config, stage_dir, options, seed):
        opts = ['--cfg-options', *options] if options else []
        if self.gpus > 1:
            return [self.py, '-m', 'torch.distributed.run', f'--nproc_per_node={self.gpus}',
                    f'--master_port={os.environ.get("PORT", 29500)}', '-m', TRAIN, str(config),
                    '--work-dir', str(stage_dir), '--seed', str(seed), *opts, *self.tracking,
                    '--launcher', 'pytorch']
        return [self.py, '-m', TRAIN, str(config), '--work-dir', str(stage_dir), '--seed',
                str(seed), *self.tracking,
                *opts]

    def test_cmd(self, config, ckpt, stage_dir, out, options, seed, show_dir=None):
        opts = ['--cfg-options', *options] if options else []
        opts += ['--show-dir', str(show_dir)] if show_dir else []
        return [self.py, '-m', 'lomar_transfer.cli.test', str(config), str(ckpt), '--work-dir',
                str(stage_dir), '--out', str(out), '--seed', str(seed), *opts]

    def eval_cmd(self, method, stage, config, ckpt, stage_dir, out, options, seed, show_dir=None):
        """The stage's evaluator: tools/test.py on the stage's config, or tools/feature_eval.py
        (k-NN, linear, low-shot, clustering) on the backbone ``ckpt`` with the config of the
        stage's ``eval_config`` stage (MAE-CT: the method's linear probe)."""
        spec = bm.STAGES[stage]
        if spec.evaluator == 'test':
            return self.test_cmd(config, ckpt, stage_dir, out, options, seed, show_dir)
        assert spec.evaluator == 'features', spec.evaluator
        eval_config = bm.config_path(self.args.profile, method, spec.eval_config)
        options = [o for o in options if not o.startswith(bm.WEIGHTS_KEY)]
        opts = ['--cfg-options', *options] if options else []  # (CHECKPOINT sets the weights)
        return [self.py, '-m', 'lomar_transfer.cli.feature_eval', str(eval_config), str(ckpt),
                '--out', str(out), *opts]

    def run(self, cmd, log, label, env=None):
        """Run a command (in ``env``, else the stages' environment), full output to ``log``,
        live progress lines to the console."""
        print(f'  $ {shlex.join(cmd)}', flush=True)
        last = 0.
        self.check_stop(label)
        with open(log, 'a') as f, subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env=env or self.env) as proc:
            self.child = proc
            if self.stop:  # arrived while the stage started
                proc.send_signal(self.stop)
            for line in proc.stdout:
                f.write(line)
                m = PROGRESS.search(line)
                if m and (m[1] == 'train' or time.time() - last > 20):
                    last = time.time()
                    loss = LOSS.search(line)
                    print(f'  [{label}] {m[1]} {m[2]}/{m[3]}'
                          + (f'  loss {loss[1]}' if loss else '')
                          + (f'  eta {m[4]}' if m[4] else ''), flush=True)
                elif 'Error' in line or 'error:' in line:
                    print(f'  [{label}] {line.rstrip()}', flush=True)
        self.child = None
        if proc.returncode in PREEMPTED:  # the stage checkpointed: same status, for Slurm
            print(f'[{label}] stopped by {PREEMPTED[proc.returncode]} after a checkpoint; run '
                  'the same command again to resume', file=sys.stderr, flush=True)
            raise SystemExit(proc.returncode)
        if proc.returncode:
            self.check_stop(label)  # killed by the signal before it could checkpoint
            raise SystemExit(f'[{label}] failed (exit {proc.returncode}); full log: {log}\n'
                             f'Fix the cause and re-run the same command: finished stages are '
                             f'kept and this one resumes.')

    def check_stop(self, label):
        """A signal that came outside a stage: stop before the next one, with its status."""
        if self.stop:
            print(f'[{label}] {self.stop.name} received: stopping; run the same command again to '
                  'continue', file=sys.stderr, flush=True)
            raise SystemExit(EXIT_STATUS[self.stop])

    def run_stage(self, method, stage, pretrained, seed):
        """Train + evaluate one stage with one seed unless it is complete; returns its result."""
        label = f'{method} | {stage}' + (f' | seed {seed}' if len(self.seeds) > 1 else '')
        stage_dir = (bm.seed_dir(self.work_dir, seed, self.seeds) / method
                     / bm.stage_dir_name(stage, self.args.protocol))
        done = bm.read_result(stage_dir)
        if done is not None:
            print(f'[{label}] complete, skipped ({stage_dir / "result.json"})', flush=True)
            return done
        stage_dir.mkdir(parents=True, exist_ok=True)
        config = bm.config_path(self.args.profile, method, stage, self.args.protocol)
        spec = bm.STAGES[stage]
        eval_options = [*bm.preset_options(method), *self.args.cfg_options]
        if not spec.pretrains:
            eval_options.append(bm.weights_option(pretrained))
        train_options = list(eval_options)
        if spec.evaluate_once:  # no validation while training
            train_options += ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
        t0 = time.time()
        result = dict(method=method, stage=stage, config=bm.show_path(config),
                      pretrained=pretrained, seed=seed)
        if not spec.pretrains and not self.args.no_untrained:
            out = stage_dir / 'untrained.json'
            if not out.exists():
                print(f'[{label}] evaluating the model before training', flush=True)
                # the feature evaluator reads the backbone from its checkpoint argument; the
                # test runs the stage's model, whose backbone loads init_cfg ('none': no
                # checkpoint over it)
                before = pretrained if spec.evaluator == 'features' else 'none'
                self.run(self.eval_cmd(method, stage, config, before, stage_dir, out,
                                       eval_options, seed), stage_dir / 'untrained.log', label)
            result['untrained'] = json.loads(out.read_text())
        if not spec.pretrains and not pretrained:
            print(f'[{label}] no pretrained weights: the backbone starts from its random '
                  'initialisation', flush=True)
        if (stage_dir / TRAINED).exists():  # interrupted after training: evaluate only
            ckpt = (stage_dir / TRAINED).read_text().strip()
            print(f'[{label}] trained before ({ckpt}): evaluating', flush=True)
        else:
            self.train_stage(method, stage, label, config, stage_dir, eval_options,
                             train_options, seed)
            ckpt = (stage_dir / 'last_checkpoint').read_text().strip()
        result['checkpoint'] = ckpt
        if spec.evaluator == 'reconstruction':
            curve = bm.loss_curve(stage_dir)
            result['losses'] = [curve[0][1], curve[-1][1]] if curve else None
            if method in bm.METHODS:  # masked image modelling: its reconstructions
                self.run([self.py, '-m', 'lomar_transfer.cli.visualize_reconstruction',
                          str(config), ckpt, '--num', '2', '--scale', '2', '--seed', str(seed),
                          '--out-dir', str(stage_dir / 'pictures')], stage_dir / 'pictures.log',
                         label)
            self.run([self.py, '-m', 'lomar_transfer.cli.visualize_attention', str(config), ckpt,
                      '--num', '2', '--scale', '2', '--out-dir', str(stage_dir / 'attention')],
                     stage_dir / 'attention.log', label)
            result['attention'] = sorted(str(p.relative_to(self.work_dir))
                                         for p in (stage_dir / 'attention').glob('*.png'))
        else:
            out = stage_dir / 'metrics.json'
            show = stage_dir / 'pictures' if spec.pictures else None
            self.run(self.eval_cmd(method, stage, config, ckpt, stage_dir, out, eval_options,
                                   seed, show), stage_dir / 'test.log', label)
            result['metrics'] = json.loads(out.read_text())
        result['pictures'] = sorted(str(p.relative_to(self.work_dir))  # mmdet writes .jpg
                                    for p in (stage_dir / 'pictures').rglob('*')
                                    if p.suffix in ('.png', '.jpg'))
        result['seconds'] = round(time.time() - t0, 1)
        bm.write_json_atomic(stage_dir / 'result.json', result)  # marks the stage complete
        shown = ', '.join(f'{k}={v:.4g}' for k, v in result.get('metrics', {}).items()
                          if k in spec.metrics)
        print(f'[{label}] done in {result["seconds"]:.0f}s {shown}', flush=True)
        return result

    def train_stage(self, method, stage, label, config, stage_dir, eval_options, train_options,
                    seed):
        """Train one stage, resuming from its last checkpoint when a run was interrupted; marks
        the stage's training finished (TRAINED) so that an interruption during its evaluation
        does not train again."""
        resume = (stage_dir / 'last_checkpoint').exists()
        print(f'[{label}] {"resuming" if resume else "training"}: {bm.show_path(config)}',
              flush=True)
        head = bm.config_path(self.args.profile, method, stage, self.args.protocol, 'head')
        if head is not None:  # MAE-CT's first phase, the head alone, in its own folder
            head_dir = stage_dir / 'head'
            if not (head_dir / 'phase_done').exists():
                head_dir.mkdir(exist_ok=True)
                print(f'[{label}] phase 1: {bm.show_path(head)}', flush=True)
                head_resume = (head_dir / 'last_checkpoint').exists()
                self.run(self.train_cmd(head, head_dir, eval_options, seed)
                         + (['--resume'] if head_resume else []), head_dir / 'train.log', label)
                atomic_write(head_dir / 'phase_done', '')
            train_options = [o for o in train_options if not o.startswith(bm.WEIGHTS_KEY)]
            if not resume:  # (with --resume, mmengine would resume from load_from: the head's
                # checkpoint, restarting the tuning at the head phase's iteration)
                head_ckpt = (head_dir / 'last_checkpoint').read_text().strip()
                train_options.append(f'load_from={head_ckpt}')
        cmd = self.train_cmd(config, stage_dir, train_options, seed)
        self.run(cmd + (['--resume'] if resume else []), stage_dir / 'train.log', label)
        atomic_write(stage_dir / TRAINED, (stage_dir / 'last_checkpoint').read_text())

    # ------------------------------------------------------------------ the suite
    def print_launch_plan(self):
        if not CLONE:
            print('(the installed package: torchrun runs its modules and configs)')
        """The paper profile without GPUs: the exact commands, not a week-long CPU run."""
        print('No GPU here: the paper profile trains ViT-B for days on 8-16 GPUs. Run these '
              'on a GPU machine (or wrap them in tools/slurm_train.sh PARTITION JOB ...):\n')
        for method in self.args.methods:
            pretrain_wd = Path(self.args.work_dir) / method / bm.stage_dir_name(bm.PRETRAIN)
            ckpt = None if method in bm.BASELINES else self.args.pretrained.get(method) or (
                pretrain_wd / bm.final_checkpoint(bm.config_path('paper', method, bm.PRETRAIN)))
            for stage in self.args.stages:
                if (self.args.seeds[0], method, stage) not in self.jobs:
                    continue  # (scratch: no pretraining, nothing for MAE-CT to tune)
                config = bm.config_path('paper', method, stage, self.args.protocol)
                gpus = bm.launch_gpus(stage, config)
                wd = Path(self.args.work_dir) / method / bm.stage_dir_name(stage,
                                                                           self.args.protocol)
                options = [*bm.preset_options(method), bm.weights_option(ckpt)]
                extra = '' if bm.STAGES[stage].pretrains else f' --cfg-options {" ".join(options)}'
                head = bm.config_path('paper', method, stage, self.args.protocol, 'head')
                if head is not None:  # MAE-CT: the head alone, then the tuning from its end
                    print(f'{launch("train", head, gpus)} --work-dir {wd}/head{extra}')
                    extra = f' --cfg-options load_from={wd}/head/{bm.final_checkpoint(head)}'
                print(f'{launch("train", config, gpus)} --work-dir {wd}{extra}')
                if bm.STAGES[stage].evaluator == 'test':
                    trained = f'{wd}/{bm.final_checkpoint(config)}'
                    print(f'  then: {launch("test", config, gpus, trained)} '
                          f'--out {wd}/metrics.json')
                print(f'  reads: {", ".join(data_paths(config))}')
            print()

    def prepare_data(self):
        if self.args.profile != 'synthetic':
            return
        from ..datasets.synthetic import MANIFEST, make_all
        root = Path(self.args.data_root)
        if all((root / d / MANIFEST).exists() for d in ('coco', 'ade', 'imagenet')):
            return  # made before (possibly with other sizes): use it as it is
        print(f'making the embedded synthetic datasets under {root}', flush=True)
        make_all(root)

    def pretrained_for(self, method, seed):
        """The checkpoint the transfer stages start from when this run does not pretrain:
        --pretrained, else the method's finished pretrain stage (of this seed) in this work dir;
        None for scratch, and when this run pretrains (the pretrain stage's checkpoint then)."""
        if method in bm.BASELINES or method in self.args.pretrained \
                or bm.PRETRAIN in self.args.stages:
            return self.args.pretrained.get(method)
        stage_dir = (bm.seed_dir(self.work_dir, seed, self.seeds) / method
                     / bm.stage_dir_name(bm.PRETRAIN))
        done = bm.read_result(stage_dir)
        if done is None:
            where = (f'its pretrain stage in {stage_dir} did not finish'
                     if stage_dir.is_dir() else f'no finished pretrain stage in {self.work_dir}')
            raise SystemExit(
                f'error: {method}: {where} and no --pretrained: run the pretrain stage first '
                f'(add it: --stages pretrain {" ".join(self.args.stages)}) or pass '
                '--pretrained CHECKPOINT (with one --methods entry)')
        return done['checkpoint']

    # ------------------------------------------------------------------ the dry run
    def dry_configs(self, method, stage, work_dir, weights, images=None):
        """[(phase dir, dry config, changes, paper config, full schedule)] of a stage: MAE-CT's
        head phase first. ``images``: validation images (default --dry-run-images; the feature
        evaluation also trains its probe on as many)."""
        args, out = self.args, []
        import torch
        options = [*bm.preset_options(method), *args.cfg_options]
        if not bm.STAGES[stage].pretrains:
            options.append(bm.weights_option(weights))
        head = bm.config_path('paper', method, stage, args.protocol, 'head')
        main = bm.config_path('paper', method, stage, args.protocol)
        for path, where in ((head, work_dir / 'head'), (main, work_dir)):
            if path is None:
                continue
            if out:  # the tuning starts from the head phase's end, not from the pretraining
                head_dir, head_cfg = out[-1][:2]
                last = (f'iter_{args.dry_run_iters}.pth' if 'max_iters' in head_cfg.train_cfg
                        else 'epoch_1.pth')
                options = [o for o in options if not o.startswith(bm.WEIGHTS_KEY)]
                options.append(f'load_from={head_dir / last}')
            cfg, changes, full = dry_run.dry_config(
                path, options, args.dry_run_iters, images or args.dry_run_images,
                args.dry_run_batch, bm.launch_gpus(stage, path), args.data_root,
                torch.cuda.is_available() and self.gpus > 0)
            out.append((where, cfg, changes, path, full))
        return out

    def dry_run(self):
        args = self.args
        root = self.work_dir / 'dry-run'
        seed = self.seeds[0]
        jobs = [(m, s) for sd, m, s in self.jobs if sd == seed]
        devices = max(self.gpus, 1)
        where = f'GPU{"s" if self.gpus > 1 else ""}' if self.gpus else 'CPU process'
        print(f'dry run: {len(jobs)} stages ({", ".join(args.methods)} x '
              f'{", ".join(args.stages)}), {args.dry_run_iters} iterations and '
              f'{args.dry_run_images} validation images each, outputs in {root}', flush=True)
        # the data of every stage first: each problem in one line, before anything trains
        problems, found = {}, {}  # problem -> [fix, configs reading it]
        for method, stage in jobs:
            try:
                phases = self.dry_configs(method, stage, root, None)
            except Exception as e:  # a config that does not load: named, with the others
                problems[f'{method} {stage}: its paper config does not load: '
                         f'{type(e).__name__}: {str(e).splitlines()[0]}'] = [
                    'a broken install or config: reinstall, or fix the config', []]
                continue
            for _, cfg, _, path, _ in phases:
                data, lines = dry_run.data_report(cfg)
                found[(method, stage)] = data
                for text, fix in lines.items():
                    # ('data/imagenet/' and 'data/imagenet' are one folder)
                    text = re.sub(r"/+'", "'", text.removeprefix('dataset: '))
                    fix = fix.replace('DATA/', f'{args.data_root or "data"}/')
                    problems.setdefault(text, [fix, []])[1].append(bm.show_path(path))
        earlier = {}
        for m in args.methods:
            last = root / m / bm.stage_dir_name(bm.PRETRAIN) / 'last_checkpoint'
            if last.exists():
                earlier[m] = last.read_text().strip()
            elif m in bm.PRETRAINED_HERE and m not in args.pretrained \
                    and (m, bm.PRETRAIN) not in jobs:
                problems[f'{m}: no checkpoint for its transfer stages'] = [
                    f'add --stages pretrain, or --pretrained {m}=PATH', []]
        if problems:
            raise SystemExit('error: the dry run cannot start:\n' + '\n'.join(
                f'  - {text}' + (f' (read by {", ".join(dict.fromkeys(users))})' if users
                                 else '') + f'\n    fix: {fix}'
                for text, (fix, users) in problems.items()))
        root.mkdir(parents=True, exist_ok=True)
        rows, failed = [], []
        with WorkDirLock(root, 'benchmark dry run'), passing_signals_on(self):
            weights = {m: args.pretrained.get(m) for m in args.methods}
            for m in args.methods:  # not pretrained in this dry run: an earlier dry run's
                if m in bm.PRETRAINED_HERE and not weights[m] and (m, bm.PRETRAIN) not in jobs:
                    weights[m] = earlier.get(m)
            for method, stage in jobs:
                label = f'{method} | {stage} (dry run)'
                stage_dir = root / method / bm.stage_dir_name(stage, args.protocol)
                print(f'\n=== {label}', flush=True)
                row = dict(method=method, stage=bm.stage_dir_name(stage, args.protocol),
                           data=found[(method, stage)])
                rows.append(row)
                if not bm.STAGES[stage].pretrains and method in bm.PRETRAINED_HERE \
                        and method not in args.pretrained and weights[method] is None:
                    row['metric'] = 'skipped: its pretraining failed'
                    continue
                try:
                    self.dry_run_stage(method, stage, stage_dir, weights, row, devices)
                except SystemExit as e:  # the stage failed: the others still run
                    failed.append(label)
                    row['metric'] = 'FAILED'
                    print(e, file=sys.stderr, flush=True)
        # and the stages of earlier dry runs in this folder (e.g. another --protocol)
        seen = {(r['method'], r['stage']) for r in rows}
        earlier_rows = [r for f in sorted(root.glob('*/*/dry_run.json'))
                        for r in [json.loads(f.read_text())]
                        if (r['method'], r['stage']) not in seen]
        table = dry_run.format_table(rows + earlier_rows, devices, where)
        atomic_write(root / 'dry_run.md', table + '\n')
        print('\n' + table + f'\n\nwritten: {root / "dry_run.md"}', flush=True)
        if failed:
            raise SystemExit(f'error: {len(failed)} stage(s) failed the dry run: '
                             f'{", ".join(failed)}; their logs are in {root}')

    def dry_run_stage(self, method, stage, stage_dir, weights, row, devices):
        spec = bm.STAGES[stage]
        phases = self.dry_configs(method, stage, stage_dir,
                                  None if spec.pretrains else weights[method])
        for where, cfg, changes, path, _ in phases:
            config = write_dry_config(where, cfg, path, changes)
            print(f'[{method} | {stage}] {bm.show_path(path)}; changed: {"; ".join(changes)}',
                  flush=True)
            env = dict(self.env or os.environ,
                       **{dry_run.PEAK_MEMORY_VAR: str(where / 'peak_memory.json')})
            self.run(self.train_cmd(config, where, [], self.seeds[0]), where / 'train.log',
                     f'{method} | {stage}', env)
        log = dry_run.parse_train_log((stage_dir / 'train.log').read_text())
        first = dry_run.parse_train_log((phases[0][0] / 'train.log').read_text())
        loaded = first['loaded']
        row['loaded'] = loaded
        row['weights'] = 'none (random init)' if not spec.pretrains and not weights[method] \
            else '-'
        if not spec.pretrains and weights[method] and loaded is None:
            raise SystemExit(f'[{method} | {stage}] the backbone did not report loading '
                             f'{weights[method]}; see {stage_dir / "train.log"}')
        losses = log['losses']
        finite = bool(losses) and all(math.isfinite(v) for v in losses)
        row['loss'] = (f'{losses[0]:.3g} -> {losses[-1]:.3g}' if finite else
                       'NOT FINITE' if losses else 'not logged')
        row['seconds_per_iter'] = log['seconds_per_iter']
        peaks = [json.loads(p.read_text()) for p in stage_dir.glob('peak_memory.json*')]
        row['peak_mb'] = max((p.get('cuda_mb') or p['rss_mb'] for p in peaks), default=None)
        cfg, (full_iters, total) = phases[-1][1], phases[-1][4]
        row['hours'], row['device_hours'] = dry_run.project(
            log['seconds_per_iter'], cfg.train_dataloader.batch_size,  # per device
            full_iters, total, devices)
        ckpt = (stage_dir / 'last_checkpoint').read_text().strip()
        if spec.pretrains:
            weights[method] = ckpt
            row['metric'] = '(pretraining: none)'
        else:
            out = stage_dir / 'metrics.json'
            config = stage_dir / 'dry_run_config.py'
            if spec.evaluator == 'features':  # the frozen features, on the linear stage's data
                where, lin, changes, path, _ = self.dry_configs(
                    method, spec.eval_config, stage_dir / 'eval', None,
                    images=max(self.args.dry_run_images, 2))[0]
                cmd = [self.py, '-m', 'lomar_transfer.cli.feature_eval',
                       str(write_dry_config(where, lin, path, changes)), ckpt, '--out', str(out)]
            else:
                cmd = self.test_cmd(config, ckpt, stage_dir, out, [], self.seeds[0])
            self.run(cmd, stage_dir / 'test.log', f'{method} | {stage}')
            metrics = json.loads(out.read_text()) if out.exists() else {}
            shown = [f'{h} {metrics[k] * s:.1f}' for k, h, s in spec.columns if k in metrics]
            detector = any('bbox' in key for key in spec.metrics)
            row['metric'] = ', '.join(shown) or (
                f'evaluated; no detections after {self.args.dry_run_iters} iterations'
                if detector else 'evaluated; no metric returned')
        atomic_write(stage_dir / 'dry_run.json', json.dumps(row, indent=1, default=str))

    def main(self):
        if self.args.dry_run:
            self.dry_run()
            return
        if self.args.profile == 'paper' and self.gpus == 0:
            self.print_launch_plan()
            return
        # before anything is made or started: a missing pretraining stops the run at once
        self.pretrained = {(seed, m): self.pretrained_for(m, seed)
                           for seed, m, _ in self.jobs}
        self.prepare_data()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with WorkDirLock(self.work_dir, 'benchmark'), passing_signals_on(self):
            self.run_all()  # (a second benchmark in this work dir refuses)

    def run_all(self):
        t0 = time.time()
        print(f'benchmark: {len(self.jobs)} stages ({", ".join(self.args.methods)} x '
              f'{", ".join(self.args.stages)} x seed {", ".join(map(str, self.seeds))}), '
              f'outputs in {self.work_dir}', flush=True)
        for seed in self.seeds:
            for method in self.args.methods:
                pretrained = self.pretrained.get((seed, method))
                for stage in self.args.stages:
                    if (seed, method, stage) not in self.jobs:
                        continue
                    k = self.jobs.index((seed, method, stage)) + 1
                    print(f'\n=== stage {k}/{len(self.jobs)}: {method} {stage}'
                          + (f' seed {seed}' if len(self.seeds) > 1 else '')
                          + f' ({time.time() - t0:.0f}s elapsed)', flush=True)
                    result = self.run_stage(method, stage, pretrained, seed)
                    if bm.STAGES[stage].pretrains:
                        pretrained = result['checkpoint']
        rows = bm.aggregate_seeds({
            seed: bm.collect(bm.seed_dir(self.work_dir, seed, self.seeds), self.args.methods,
                             self.args.stages, self.args.protocol) for seed in self.seeds})
        table = bm.write_results(self.work_dir, rows, self.args.stages, self.args.profile,
                                 self.args.protocol, self.seeds)
        plots = bm.plot_results(self.work_dir, rows, self.args.stages, self.args.profile,
                                self.args.protocol, self.seeds)
        print('\n' + table)
        print(f'written: {self.work_dir}/results.md, results.csv, results.json, '
              + ', '.join(p.name for p in plots))
        print(f'benchmark done in {time.time() - t0:.0f}s')


@one_line_errors()
def main(argv=None):
    Suite(parse_args(argv)).main()


if __name__ == '__main__':
    main()
