"""Our configs run with the stock ``tools/train.py`` of mmdet, mmseg and mmpretrain (shipped in each
package under ``.mim/tools/``) keep every safety feature, because the configs declare them
(configs/_base_/safety.py): data checks, atomic checkpoints, exact resume, the NaN stop."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO

# (stock tool's package, one of our configs that the package's tools run, dataset it reads)
CASES = {
    'mmdet': ('configs/mae/mask-rcnn_vit-tiny-p8_synthetic-coco.py', 'coco'),
    'mmseg': ('configs/mae/upernet_vit-tiny-p8_synthetic-ade20k.py', 'ade'),
    'mmpretrain': ('configs/mae/mae_vit-tiny-p8_synthetic.py', 'imagenet'),
}


def stock_train(package):
    module = __import__(package)
    return Path(module.__file__).parent / '.mim' / 'tools' / 'train.py'


def short_config(tmp_path, package, root, extra=''):
    """Our config, 4 iterations, a checkpoint every 2 (only the last kept), no validation."""
    config, data = CASES[package]
    body = [f"_base_ = '{REPO / config}'", 'train_cfg = dict(max_iters=4)',
            'default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=1), '
            'logger=dict(interval=1))', 'randomness = dict(seed=3)']
    if data == 'imagenet':
        body += [f"train_dataloader = dict(batch_size=8, dataset=dict(data_root='{root}'))",
                 "param_scheduler = [dict(type='CosineAnnealingLR', T_max=4, by_epoch=False)]"]
    else:
        batch = 2 if data == 'ade' else 1  # UperNet's pooled 1x1 BatchNorm needs 2 images
        body += [f"train_dataloader = dict(batch_size={batch}, dataset=dict(data_root='{root}'))",
                 'model = dict(backbone=dict(init_cfg=None))',
                 'val_cfg = val_dataloader = val_evaluator = None',
                 "param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, "
                 "end=4)]"]
    path = tmp_path / f'{package}_cfg.py'
    path.write_text('\n'.join(body) + '\n' + extra)
    return path


def run(args, tmp_path, env=None):
    """A stock tool from a directory outside the repository."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=tmp_path, capture_output=True,
                          text=True, env=dict(os.environ, **(env or {})))


def data_root(synthetic_root, package):
    data = CASES[package][1]
    return synthetic_root / ('ade/ADEChallengeData2016' if data == 'ade' else data)


@pytest.mark.parametrize('package', list(CASES))
@pytest.mark.slow
def test_stock_train_keeps_atomic_checkpoints_and_exact_resume(package, synthetic_root,
                                                               tmp_path):
    train = stock_train(package)
    config = short_config(tmp_path, package, data_root(synthetic_root, package))
    ref = run([train, config, '--work-dir', tmp_path / 'ref'], tmp_path)
    assert ref.returncode == 0, ref.stderr[-3000:]

    # killed while writing its second checkpoint (iteration 4), with max_keep_ckpts=1
    crash = tmp_path / 'crash_in_save.py'
    crash.write_text(
        "import os, sys, runpy\n"
        "real = os.fsync\n"
        "def fsync(fd):\n"
        "    if 'iter_4.pth' in os.readlink(f'/proc/self/fd/{fd}'):\n"
        "        os._exit(137)\n"
        "    real(fd)\n"
        "os.fsync = fsync\n"
        f"sys.argv = {[str(train), str(config), '--work-dir', str(tmp_path / 'w')]!r}\n"
        f"runpy.run_path({str(train)!r}, run_name='__main__')\n")
    out = run([crash], tmp_path)
    assert out.returncode == 137, out.stderr[-3000:]
    work = tmp_path / 'w'
    last = (work / 'last_checkpoint').read_text().strip()
    assert last.endswith('iter_2.pth') and Path(last).is_file()
    assert torch.load(last, weights_only=False)['meta']['iter'] == 2

    resumed = run([train, config, '--work-dir', work, '--resume'], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(tmp_path / 'ref/iter_4.pth', weights_only=False)['state_dict']
    b = torch.load(work / 'iter_4.pth', weights_only=False)['state_dict']
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f'{len(differ)} tensors differ after resume, e.g. {differ[:3]}'


@pytest.mark.parametrize('package', list(CASES))
@pytest.mark.slow
def test_stock_train_stops_on_nan_and_checks_data(package, synthetic_root, tmp_path):
    train = stock_train(package)
    hook = tmp_path / 'nan_at_3.py'
    hook.write_text(
        "import torch\nfrom mmengine.hooks import Hook\nfrom mmengine.registry import HOOKS\n"
        "@HOOKS.register_module()\nclass NaNWeightsAt3(Hook):\n"
        "    def before_train_iter(self, runner, batch_idx, data_batch=None):\n"
        "        if runner.iter == 2:\n"
        "            with torch.no_grad():\n"
        "                next(runner.model.parameters()).fill_(float('nan'))\n")
    config = short_config(tmp_path, package, data_root(synthetic_root, package),
                          "custom_imports = dict(imports=['lomar_transfer', 'nan_at_3'])\n"
                          "custom_hooks = [dict(type='NaNWeightsAt3')]\n")
    out = run([train, config, '--work-dir', tmp_path / 'w'], tmp_path,
              env=dict(PYTHONPATH=str(tmp_path)))
    assert out.returncode != 0
    assert 'NonFiniteLossError: the training loss became nan at iteration 3' in out.stderr
    assert sorted(p.name for p in (tmp_path / 'w').glob('iter_*.pth')) == ['iter_2.pth']

    # a data_root that does not exist: the check names it before any dataset is built
    config = short_config(tmp_path, package, tmp_path / 'nowhere')
    out = run([train, config, '--work-dir', tmp_path / 'w2'], tmp_path)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('lomar_transfer.datasets.checks.DataError: train_dataloader.dataset:')
    assert 'nowhere' in last and 'lomar-make-data' in last


# built by name outside the registries (mmcv ops) or by a registry of mmpretrain's own
NOT_REGISTRY_BUILT = ('roi_layer', 'nms', 'augments')


def unresolved_types(node, scope, where=''):
    """``type`` names of a config that no mmengine registry resolves in their scope (the
    config's default_scope, or a dict's ``_scope_``)."""
    import mmengine.registry as R
    registries = [R.MODELS, R.HOOKS, R.TRANSFORMS, R.DATASETS, R.METRICS, R.VISUALIZERS,
                  R.VISBACKENDS, R.OPTIMIZERS, R.OPTIM_WRAPPERS, R.OPTIM_WRAPPER_CONSTRUCTORS,
                  R.PARAM_SCHEDULERS, R.LOOPS, R.DATA_SAMPLERS, R.RUNNERS, R.LOG_PROCESSORS,
                  R.EVALUATOR, R.TASK_UTILS, R.MODEL_WRAPPERS, R.FUNCTIONS,
                  R.WEIGHT_INITIALIZERS]

    def resolves(name, scope):
        for registry in registries:
            with registry.switch_scope_and_registry(scope) as r:
                if r.get(name) is not None:
                    return True
        return False

    found = []
    if isinstance(node, dict):
        scope = node.get('_scope_', scope)
        if isinstance(node.get('type'), str) and not resolves(node['type'], scope):
            found.append(f'{where}: {node["type"]} (scope {scope})')
        for key, value in node.items():
            if key not in NOT_REGISTRY_BUILT:
                found += unresolved_types(value, scope, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += unresolved_types(value, scope, f'{where}[{i}]')
    return found


@pytest.mark.slow
def test_every_config_declares_the_safety_features_and_builds_as_a_base(tmp_path):
    """Each runnable config, inherited as a user does (``lomar_transfer::``), names the runner
    and hooks (nothing added by a script), has its project's visualization hook for
    ``--show-dir`` (transfer configs), and every ``type`` in it resolves once the runner has
    dropped the scope mmengine stamps on our configs' dicts."""
    from mmengine.config import Config

    from lomar_transfer.engine.runner import drop_package_scope
    import mmdet.registry, mmpretrain.registry, mmseg.registry  # noqa: F401,E401  (children)
    configs = [p for p in sorted((REPO / 'configs').rglob('*.py')) if '_base_' not in p.parts]
    assert len(configs) > 50
    stamped = []
    for path in configs:
        name = path.relative_to(REPO / 'configs')
        user = tmp_path / 'user.py'
        user.write_text(f"_base_ = ['lomar_transfer::{name}']\n")
        cfg = Config.fromfile(user)
        hooks = cfg.default_hooks
        assert 'lomar_transfer' in cfg.custom_imports.imports, name
        assert cfg.runner_type == 'lomar_transfer.CheckedRunner', name
        assert hooks.checkpoint.type == 'lomar_transfer.AtomicCheckpointHook', name
        assert hooks.exact_resume.type == 'lomar_transfer.ExactResumeHook', name
        assert hooks.finite_loss.type == 'lomar_transfer.FiniteLossHook', name
        if path.parent.name != 'maect' and not path.name.startswith(('lomar_', 'mae_', 'cae_')):
            assert 'visualization' in hooks, name
        stamped += unresolved_types(cfg._cfg_dict, cfg.default_scope, str(name))
        assert unresolved_types(drop_package_scope(cfg._cfg_dict), cfg.default_scope,
                                str(name)) == []
    assert stamped  # what the runner repairs: e.g. mmseg's PackSegInputs in our scope


def test_tracking_switches_add_the_mmengine_backends(tmp_path):
    """--tensorboard / --wandb PROJECT add mmengine's backends next to the config's own (the
    TensorBoard event files are checked in test_packaging.py; W&B cannot reach a server here:
    its backend is configured, and wandb's own WANDB_MODE=offline keeps it local)."""
    from mmengine.registry import VISBACKENDS

    from lomar_transfer.cli.train import parse_args
    from lomar_transfer.utils import add_tracking, load_config
    args = parse_args([str(REPO / CASES['mmdet'][0]), '--work-dir', str(tmp_path / 'run'),
                       '--tensorboard', '--wandb', 'lomar-bench'])
    cfg = add_tracking(load_config(args.config, {}, args.work_dir), args.tensorboard, args.wandb)
    backends = cfg.visualizer.vis_backends
    assert [b['type'] for b in backends] == ['LocalVisBackend', 'TensorboardVisBackend',
                                            'WandbVisBackend']
    assert backends[2]['init_kwargs'] == dict(project='lomar-bench', name='run')
    assert all(VISBACKENDS.get(b['type']) for b in backends)
    plain = load_config(args.config, {}, args.work_dir)
    assert add_tracking(plain).visualizer.vis_backends == [dict(type='LocalVisBackend')]
