"""Train from an OpenMMLab config (mmpretrain, mmdet or mmseg) with mmengine's Runner.

    lomar-train CONFIG [--work-dir DIR] [--resume] [--tensorboard] [--wandb PROJECT]
                [--cfg-options k=v ...] [--launcher pytorch]
    (python tools/train.py ... in a clone of the repository)

A thin convenience: the safety features (data checks, atomic checkpoints, exact resume, stop on a
NaN loss) are declared in the configs (configs/_base_/safety.py), so mmdet's, mmseg's and
mmpretrain's own tools/train.py give the same run. What this adds: ``--cfg-options`` keys are
checked for typos, ``--launcher pytorch`` works on CPU (gloo), tracking switches, and the errors
the safety features raise end in one line instead of a traceback.

Exit status: 0 done; 1 an error (``error: ...`` names the cause and the fix); 75 / 143 stopped
by SIGUSR1 / SIGTERM after writing a checkpoint (lomar_transfer/engine/preemption.py): run the same
command again to continue.
"""
import argparse
import os

from mmengine.config import DictAction
from torch.distributed.elastic.multiprocessing.errors import record

from ..dry_run import PEAK_MEMORY_VAR
from ..errors import one_line_errors
from ..utils import add_tracking, build_runner, explaining_cfg_options, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model from a config')
    parser.add_argument('config')
    parser.add_argument('--work-dir', help='default: work_dirs/<config name>')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                        help="resume from the work dir's last checkpoint (done anyway when it has "
                        'one, unless the config sets auto_resume=False), or from CHECKPOINT '
                        "(mmdet's and mmseg's --resume PATH)")
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (mmengine AmpOptimWrapper, fp16 on a GPU), as the '
                        "stock tools' --amp")
    parser.add_argument('--tensorboard', action='store_true',
                        help='also log scalars to TensorBoard (WORK_DIR/<timestamp>/vis_data)')
    parser.add_argument('--wandb', metavar='PROJECT',
                        help='also log to Weights & Biases (set WANDB_MODE=offline without a '
                        'server)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. train_cfg.max_iters=10')
    parser.add_argument('--seed', type=int, help="sets the config's randomness.seed")
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    return parser.parse_args(argv)


@one_line_errors()
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher,
                      args.seed)
    cfg.resume = args.resume is not None
    if args.resume not in (None, 'auto'):  # a named checkpoint, as the stock tools take it
        cfg.load_from = args.resume
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    add_tracking(cfg, args.tensorboard, args.wandb)
    os.makedirs(cfg.work_dir, exist_ok=True)
    with explaining_cfg_options(cfg, args.cfg_options):
        train(cfg)
    if os.environ.get(PEAK_MEMORY_VAR):  # the benchmark's dry run reads what the step needed
        write_peak_memory(os.environ[PEAK_MEMORY_VAR])


def write_peak_memory(path):
    """This process's peak resident memory and, on a GPU, peak allocated memory (MB); one file
    per rank (``path``, ``path.rank1``, ...)."""
    import json
    import resource

    import torch
    rank = int(os.environ.get('RANK', 0))
    peak = dict(rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if torch.cuda.is_available():
        peak['cuda_mb'] = torch.cuda.max_memory_allocated() / 2 ** 20
    with open(path + (f'.rank{rank}' if rank else ''), 'w') as f:
        json.dump(peak, f)


@record  # under torchrun: this rank's error ends the launcher's failure summary
def train(cfg):
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
