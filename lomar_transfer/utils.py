"""Small runtime helpers shared by the tools."""
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.config import Config


def setup_cpu_distributed(cfg):
    """Make mmengine's 'pytorch' launcher work without a GPU.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` first, which fails on machines
    without a driver; the Runner skips ``init_dist`` when a process group already exists, so we
    create a gloo group ourselves. DDP also rejects ``device_ids`` for CPU modules. On CUDA
    machines nothing changes (NCCL through mmengine).
    """
    if torch.cuda.is_available() or 'LOCAL_RANK' not in os.environ:
        return
    if not dist.is_initialized():
        dist.init_process_group('gloo')
    cfg.setdefault('model_wrapper_cfg', dict(type='MMDistributedDataParallel', device_ids=None))


def load_config(path, cfg_options=None, work_dir=None, launcher='none'):
    """Config for tools/train.py and tools/test.py: overrides, work_dir, launcher set up."""
    if not osp.isfile(path):
        raise SystemExit(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(cfg_options or {})
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(path))[0])
    cfg.launcher = launcher
    if launcher != 'none':
        setup_cpu_distributed(cfg)
    return cfg
