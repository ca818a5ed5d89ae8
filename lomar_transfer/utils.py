"""Small runtime helpers shared by the tools."""
import os

import torch
import torch.distributed as dist


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
