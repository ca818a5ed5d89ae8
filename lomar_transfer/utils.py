"""Small runtime helpers shared by the tools."""
import datetime
import difflib
import os
import os.path as osp
import re
from contextlib import contextmanager

import torch
import torch.distributed as dist
from mmengine.config import Config

from .errors import UserError


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
        # the collective timeout bounds how long the ranks wait for a rank that hangs; set it
        # as for NCCL runs: env_cfg = dict(dist_cfg=dict(timeout=SECONDS))
        timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
        dist.init_process_group(
            'gloo', **({'timeout': datetime.timedelta(seconds=timeout)} if timeout else {}))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def check_cfg_options(cfg, options):
    """Refuse ``--cfg-options`` keys that the config does not have (typos would otherwise be
    added silently and ignored). A new key is allowed inside a component built from ``type``
    (e.g. ``model.backbone.with_cp``): the component's class then checks it."""
    for key in options:
        node, parts = cfg._cfg_dict if isinstance(cfg, Config) else cfg, key.split('.')
        for i, part in enumerate(parts):
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if isinstance(node, dict) and part in node:
                node = node[part]
                continue
            if isinstance(node, dict) and 'type' in node and i == len(parts) - 1:
                break  # a new argument of a registered component
            where = '.'.join(parts[:i]) or 'the config'
            choices = list(node) if isinstance(node, dict) else []
            close = difflib.get_close_matches(part, choices, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ''
            raise SystemExit(f'--cfg-options {key}: {where} has no key {part!r}{hint}')


@contextmanager
def explaining_cfg_options(cfg, options):
    """Around building and running: a ``--cfg-options`` key new to a typed component that the
    component's class does not take (a ``TypeError`` when it is built, e.g.
    ``train_cfg.max_iter=4``) ends in one line naming the option and the close keys, as a key the
    config lacks does (:func:`check_cfg_options`)."""
    try:
        yield
    except TypeError as e:
        found = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        keys = [k for k in options or {} if found and k.split('.')[-1] == found[1]]
        if not keys:
            raise
        key = keys[0]
        node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
        for part in key.split('.')[:-1]:
            node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
        choices = [k for k in node if k not in (found[1], 'type', '_scope_')]
        close = difflib.get_close_matches(found[1], choices, n=3)
        what = str(node.get('type', key.rsplit('.', 1)[0])).split('.')[-1]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ''
        raise UserError(f'--cfg-options {key}: {what} takes no argument '
                        f'{found[1]!r}{hint}') from None


def open_weights_slots(cfg, options):
    """``--cfg-options X.init_cfg.checkpoint=PATH`` where the config has ``X.init_cfg=None`` (a
    model without pretrained weights) gives X those weights: its init_cfg becomes
    ``dict(type='Pretrained')`` first, which the option then completes."""
    for key in options:
        if not key.endswith('.init_cfg.checkpoint'):
            continue
        node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
        for part in key.split('.')[:-2]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and 'type' in node and node.get('init_cfg') is None:
            node['init_cfg'] = dict(type='Pretrained')


def config_hint(path):
    """'; did you mean ...' with the closest config files: in the folder the path names, else
    among the package's configs."""
    from pathlib import Path
    folder = Path(path).parent
    here = folder.is_dir() and folder != Path('.')
    candidates = sorted(folder.glob('*.py')) if here else sorted(
        (Path(__file__).parent / '.mim' / 'configs').glob('*/*.py'))
    names = {p.name: p for p in candidates}
    close = difflib.get_close_matches(Path(path).name, list(names), n=3, cutoff=0.5)
    if not close:
        return ''
    shown = [str(names[c]) if here else f'configs/{names[c].parent.name}/{c}' for c in close]
    return f'; did you mean {", ".join(shown)}?'


def load_config(path, cfg_options=None, work_dir=None, launcher='none', seed=None):
    """Config for tools/train.py and tools/test.py: overrides, work_dir, launcher set up, and
    mmengine's ``randomness.seed`` when ``seed`` is given."""
    if not osp.isfile(path):
        raise UserError(f'config file not found: {path}{config_hint(path)}')
    cfg = Config.fromfile(path)
    open_weights_slots(cfg, cfg_options or {})
    check_cfg_options(cfg, cfg_options or {})
    cfg.merge_from_dict(cfg_options or {})
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(path))[0])
    cfg.launcher = launcher
    if seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    if launcher != 'none':
        setup_cpu_distributed(cfg)
    return cfg


def build_runner(cfg):
    """The runner the config names (``runner_type``, as the stock tools do), else mmengine's."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def add_tracking(cfg, tensorboard=False, wandb_project=None):
    """Add mmengine's TensorBoard and/or Weights & Biases backends to the config's visualizer
    (kept: its LocalVisBackend, which writes scalars.json). The same two entries can be written
    in any config: ``visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend')])``."""
    if not (tensorboard or wandb_project):
        return cfg
    visualizer = cfg.setdefault('visualizer', dict(type='Visualizer'))
    backends = list(visualizer.get('vis_backends') or [dict(type='LocalVisBackend')])
    if tensorboard:
        backends.append(dict(type='TensorboardVisBackend'))
    if wandb_project:
        name = osp.basename(osp.normpath(cfg.work_dir))
        backends.append(dict(type='WandbVisBackend',
                             init_kwargs=dict(project=wandb_project, name=name)))
    visualizer['vis_backends'] = backends
    return cfg
