"""tools/benchmark.py options that reach the stages: --data-root (the synthetic configs read
LOMAR_DATA_ROOT, which the suite sets for every stage) and --cfg-options (also for the MAE-CT
evaluation, tools/feature_eval.py); and the documented user paths walked end to end:
--pretrained with a checkpoint of each supported release format (official LoMaR / MAE / CAE,
mmpretrain, timm, ours) or a missing file, --methods scratch, --no-untrained, transfer stages
without a pretrain stage, and a benchmark stopped (SIGTERM) at each point and run again."""
import json
import os
import re
import signal
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from conftest import REPO
from lomar_transfer import benchmark as bm
from lomar_transfer.cli import benchmark as cli
from lomar_transfer.cli import feature_eval
from lomar_transfer.datasets.synthetic import make_all
from lomar_transfer.models import LoMaRViT
from official_models import OfficialViT, mae_sincos_table, perturb_
from test_official_equivalence import official_checkpoint, our_checkpoint


@pytest.mark.slow
def test_data_root_outside_the_working_directory(tmp_path, synthetic_root):
    cwd = tmp_path / 'elsewhere'  # no data/ here: the stage must read --data-root
    cwd.mkdir()
    cmd = [sys.executable, str(REPO / 'tools/benchmark.py'), '--methods', 'mae', '--stages',
           'pretrain', '--data-root', str(synthetic_root), '--work-dir', 'wd', '--cfg-options',
           'train_cfg.max_iters=1', 'train_dataloader.batch_size=8']
    env = {k: v for k, v in os.environ.items() if k != 'LOMAR_DATA_ROOT'}
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert not (cwd / 'data').exists()  # the data was not made again in the working directory
    stage = cwd / 'wd/mae/pretrain'
    assert json.loads((stage / 'result.json').read_text())['checkpoint'].endswith('iter_1.pth')
    config = next(stage.glob('*/vis_data/config.py')).read_text()
    assert f"data_root='{synthetic_root}/imagenet'" in config


def test_cfg_options_reach_the_maect_evaluation(tmp_path):
    suite = cli.Suite(cli.parse_args(['--methods', 'mae', '--stages', 'maect', '--gpus', '0',
                                      '--cfg-options', 'default_hooks.logger.interval=1']))
    options = ['default_hooks.logger.interval=1', 'model.backbone.init_cfg.checkpoint=p.pth']
    cmd = suite.eval_cmd('mae', 'maect', 'c.py', 'ckpt.pth', tmp_path, tmp_path / 'm.json',
                         options, 0)
    assert cmd[1:3] == ['-m', 'lomar_transfer.cli.feature_eval']
    assert cmd[3].endswith('configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py')
    assert cmd[4] == 'ckpt.pth'  # the checkpoint argument, not the option, sets the weights
    assert cmd[cmd.index('--cfg-options') + 1:] == ['default_hooks.logger.interval=1']
    # the other stages: tools/test.py, with every option
    cmd = suite.eval_cmd('mae', 'ade', 'c.py', 'ckpt.pth', tmp_path, tmp_path / 'm.json',
                         options, 0)
    assert cmd[cmd.index('--cfg-options') + 1:] == options


def test_feature_eval_applies_cfg_options(tmp_path, synthetic_root, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/synthetic here: only the options point at the data
    out = tmp_path / 'metrics.json'
    root = f'{synthetic_root}/imagenet'
    feature_eval.main([str(REPO / 'configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py'), '',
                       '--low-shot', '1', '--out', str(out), '--cfg-options',
                       f'train_dataloader.dataset.data_root={root}',
                       f'test_dataloader.dataset.data_root={root}'])
    metrics = json.loads(out.read_text())
    assert set(metrics) == {'knn/top1', 'linear/top1', 'cluster/acc', 'cluster/nmi',
                            'lowshot1/top1'}


# ============================================================== the documented user paths, walked
# Every run below is tools/benchmark.py in a subprocess on small data (the tiny synthetic
# architecture, 1-4 iterations), one stage where one will do.
ADE_OPTIONS = ['train_cfg.max_iters=1', 'default_hooks.logger.interval=1']
LOADED = re.compile(r'loaded (\d+)/(\d+) backbone tensors from (\S+)')
TINY = dict(dim=128, depth=4, heads=4, patch=8, img=112)  # configs/_base_/synthetic_pretrain_cpu.py
TINY_ARCH = dict(embed_dims=128, depth=4, num_heads=4, mlp_hidden_dims=512)


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    """The three data sets, as small as the stages take: one ADE20K test image, ImageNet for one
    pretraining batch of 32."""
    root = tmp_path_factory.mktemp('small') / 'data'
    make_all(root, seed=0, coco=dict(num_train=2, num_val=1),
             ade20k=dict(num_train=2, num_val=1),
             imagenet=dict(num_train_per_class=4, num_val_per_class=1))
    return root


def benchmark(cwd, root, *args, popen=False):
    cmd = [sys.executable, str(REPO / 'tools/benchmark.py'), '--data-root', str(root),
           '--gpus', '0', *args]
    if popen:
        return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def ok(out):
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return out.stdout


def loads(log):
    """(loaded, total, path) of each ``loaded N/M backbone tensors from PATH`` in a log."""
    return [(int(n), int(m), p) for n, m, p in LOADED.findall(Path(log).read_text())]


def backbone_of(ckpt):
    state = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
    return {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}


# ---------------------------------------------------------------- checkpoints of each release
# Each writer returns (file, {our backbone key: the file's tensor that must land there}): the
# mapping written out here from the release's names, not by the converters under test. Keys the
# transfer ViT has no place for (class token: no class token in the dense ViT; fixed sin-cos
# tables: computed; decoders, teachers, mask tokens) are in the file and must not be loaded.
def _timm_named(state, prefix=''):
    """Official MAE / LoMaR / timm naming -> ours: ``blocks.N.`` -> ``layers.N.``."""
    out = {}
    for key, value in state.items():
        if key.startswith(prefix):
            key = key[len(prefix):]
            out[re.sub(r'^blocks\.(\d+)\.', r'layers.\1.', key)] = value
    return out


def _encoder_only(expected):
    """The keys of the dense-task ViT among a pretraining encoder's."""
    drop = {'cls_token', 'pos_embed', 'mask_token'}
    return {k: v for k, v in expected.items() if k not in drop and not k.startswith('encoder_pred')}


def official_lomar(tmp_path):
    """models_lomar.py MaskedAutoencoderViT: iRPE tables in every block, encoder_pred, mask
    token, the (unused) MAE table; {'model': ...}."""
    model = perturb_(OfficialViT('lomar', **TINY))
    path = official_checkpoint(tmp_path, 'lomar_official', model)
    return path, _encoder_only(_timm_named(model.state_dict()))


def official_mae(tmp_path):
    """models_mae.py MaskedAutoencoderViT: the encoder with its fixed MAE sin-cos table, and the
    decoder (dropped)."""
    model = perturb_(OfficialViT('mae', **TINY))
    decoder = {'decoder_embed.weight': torch.randn(64, 128), 'mask_token': torch.randn(1, 1, 64),
               'decoder_blocks.0.norm1.weight': torch.randn(64),
               'decoder_pred.weight': torch.randn(192, 64)}
    path = official_checkpoint(tmp_path, 'mae_official', model, decoder)
    return path, _encoder_only(_timm_named(model.state_dict()))


def official_cae(tmp_path):
    """modeling_cae.py: ``encoder.`` (q/v biases, gamma_1/2 layer scales, CAE-order table),
    ``teacher.`` (its momentum copy, dropped), ``pretext_neck.`` (dropped); {'model': ...}."""
    model = perturb_(OfficialViT('cae', **TINY))
    teacher = perturb_(OfficialViT('cae', **TINY), seed=1)
    sd = OrderedDict((f'encoder.{k}', v) for k, v in model.state_dict().items())
    sd.update((f'teacher.{k}', v) for k, v in teacher.state_dict().items())
    sd['pretext_neck.norm.weight'] = torch.randn(128)
    sd['mask_token'] = torch.randn(1, 1, 128)
    path = tmp_path / 'cae_official.pth'
    torch.save({'model': sd}, path)
    expected = {re.sub(r'^layers\.(\d+)\.gamma_(\d)$', r'layers.\1.ls\2.gamma', k): v
                for k, v in _timm_named(model.state_dict()).items()}
    return path, _encoder_only(expected)


def mmpretrain_cae(tmp_path):
    """An mmpretrain CAE pretraining checkpoint: ``backbone.`` (CAEPretrainViT: ln1/ln2,
    ffn.layers.0.0 / ffn.layers.1, patch_embed.projection, gamma_1/2, final ln1), the momentum
    ``teacher.`` and the ``neck.`` (dropped); {'state_dict': ..., 'meta': ...}."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    vit = MODELS.build(dict(type='CAEPretrainViT', arch=dict(
        embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512), img_size=112,
        patch_size=8, bias='qv_bias', layer_scale_init_value=0.1))
    vit.init_weights()  # its fixed table (CAE's order); every other tensor random
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, t in vit.state_dict().items():
            if name != 'pos_embed':
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    sd = OrderedDict((f'backbone.{k}', v) for k, v in vit.state_dict().items())
    sd['teacher.layers.0.ln1.weight'] = torch.randn(128)
    sd['neck.decoders.0.ln1.weight'] = torch.randn(128)
    path = tmp_path / 'cae_mmpretrain.pth'
    torch.save({'state_dict': sd, 'meta': {'epoch': 300}}, path)
    rules = [(r'^patch_embed\.projection\.', 'patch_embed.proj.'),
             (r'^layers\.(\d+)\.ln(\d)\.', r'layers.\1.norm\2.'),
             (r'^layers\.(\d+)\.ffn\.layers\.0\.0\.', r'layers.\1.mlp.fc1.'),
             (r'^layers\.(\d+)\.ffn\.layers\.1\.', r'layers.\1.mlp.fc2.'),
             (r'^layers\.(\d+)\.gamma_(\d)$', r'layers.\1.ls\2.gamma'), (r'^ln1\.', 'norm.')]
    expected = {}
    for key, value in vit.state_dict().items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        expected[key] = value
    return path, _encoder_only(expected)


def timm_mae(tmp_path):
    """timm's VisionTransformer as timm ships MAE weights (``vit_*.mae``: a plain state dict,
    the fixed MAE table in ``pos_embed``, a classifier ``head``)."""
    import timm
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=112, patch_size=8, embed_dim=128, depth=4, num_heads=4, mlp_ratio=4.,
        num_classes=10)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, t in vit.state_dict().items():
            t.copy_(mae_sincos_table(14, 128) if name == 'pos_embed' else
                    torch.randn(t.shape, generator=g) * 0.2)
    path = tmp_path / 'mae_timm.pth'
    torch.save(vit.state_dict(), path)
    expected = {k: v for k, v in _timm_named(vit.state_dict()).items() if not k.startswith('head')}
    return path, _encoder_only(expected)


def ours_lomar(tmp_path):
    """Our LoMaR pretraining's checkpoint as mmengine writes it (``backbone.`` of LoMaRViT, in
    format 3, plus the head)."""
    backbone = perturb_(LoMaRViT(arch=TINY_ARCH, patch_size=8, img_size=112), seed=4)
    path = our_checkpoint(tmp_path, backbone, version=3)
    return path, _encoder_only(dict(backbone.state_dict()))


FORMATS = {  # name: (method whose architecture the file has, writer)
    'lomar-official': ('lomar', official_lomar),
    'mae-official': ('mae', official_mae),
    'cae-official': ('cae', official_cae),
    'mmpretrain': ('cae', mmpretrain_cae),
    'timm': ('mae', timm_mae),
    'ours': ('lomar', ours_lomar),
}


@pytest.fixture(scope='module')
def pretrained_run(tmp_path_factory, small_root):
    """``--pretrained FILE --stages ade`` with lr 0 (the trained backbone is the loaded one), one
    run per format, made on first use."""
    runs = {}

    def run(name):
        if name not in runs:
            method, write = FORMATS[name]
            cwd = tmp_path_factory.mktemp(name)
            path, expected = write(cwd)
            out = benchmark(cwd, small_root, '--methods', method, '--stages', 'ade',
                            '--pretrained', str(path), '--work-dir', 'wd', '--no-untrained',
                            '--cfg-options', *ADE_OPTIONS, 'optim_wrapper.optimizer.lr=0')
            runs[name] = (cwd, method, path, expected, ok(out))
        return runs[name]
    return run


@pytest.mark.parametrize('name', list(FORMATS))
@pytest.mark.slow
def test_pretrained_checkpoint_of_each_format_is_what_the_stage_trains(pretrained_run, name):
    cwd, method, path, expected, _ = pretrained_run(name)
    stage = cwd / 'wd' / method / 'ade'
    # the loader's report: every backbone tensor from that file (the dense ViT adds nothing)
    assert loads(stage / 'train.log') == [(len(expected), len(expected), str(path))]
    assert 'new (not in the checkpoint' not in (stage / 'train.log').read_text()
    result = json.loads((stage / 'result.json').read_text())
    assert result['pretrained'] == str(path) and 'mIoU' in result['metrics']
    row = json.loads((cwd / 'wd/results.json').read_text())['rows'][0]
    assert row['method'] == method and row['stages']['ade']['pretrained'] == str(path)
    # lr 0: the stage's checkpoint holds the backbone as loaded, tensor for tensor the file's
    trained = backbone_of(result['checkpoint'])
    assert sorted(trained) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(trained[key], value), key


@pytest.mark.slow
def test_pretrained_file_not_found(tmp_path):
    missing = tmp_path / 'no/such.pth'
    out = benchmark(tmp_path, tmp_path / 'data', '--methods', 'mae', '--stages', 'ade',
                    '--pretrained', str(missing), '--work-dir', 'wd')
    assert out.returncode == 2 and out.stdout == ''
    assert out.stderr.splitlines() == [
        f'benchmark.py: error: --pretrained {missing}: file not found (check the path)']
    assert not any(tmp_path.iterdir())  # nothing made: no data, no work dir, no stage


@pytest.mark.slow
def test_scratch_baseline_loads_no_weights(tmp_path, small_root):
    # the work dir MAE's ADE20K config names as its init_cfg (the CPU pretraining's default):
    # present with its last checkpoint, as after a run of that config, so that a scratch stage
    # that kept the config's init_cfg would load it silently
    default = tmp_path / 'work_dirs/mae_vit-tiny-p8_synthetic/iter_100.pth'
    default.parent.mkdir(parents=True)
    official_mae(tmp_path)[0].rename(default)
    (default.parent / 'last_checkpoint').write_text(str(default))
    stdout = ok(benchmark(tmp_path, small_root, '--methods', 'scratch', '--stages', 'ade',
                          '--work-dir', 'wd', '--cfg-options', *ADE_OPTIONS))
    stage = tmp_path / 'wd/scratch/ade'
    assert '[scratch | ade] no pretrained weights: the backbone starts from its random ' \
        'initialisation' in stdout
    for log in ('untrained.log', 'train.log', 'test.log'):
        assert loads(stage / log) == [], log
    # MAE's config, whose init_cfg=Pretrained the suite replaced by None
    config = (stage / 'upernet_vit-tiny-p8_synthetic-ade20k.py').read_text()
    assert 'init_cfg=None' in config and 'mae_vit-tiny-p8_synthetic' not in config
    results = json.loads((tmp_path / 'wd/results.json').read_text())
    [row] = results['rows']
    assert row['method'] == 'scratch' and row['stages']['ade']['pretrained'] is None
    assert {'mIoU', 'mIoU (untrained)'} <= set(row['metrics'])
    table = (tmp_path / 'wd/results.md').read_text()
    assert re.search(r'^\| scratch \| [\d.]+ \([\d.]+\) \| [\d.]+ min \|$', table, re.M), table


@pytest.mark.slow  # its fixture runs the benchmark
def test_no_untrained_skips_the_evaluation_before_training(pretrained_run):
    cwd, method, _, _, stdout = pretrained_run('mae-official')
    stage = cwd / 'wd' / method / 'ade'
    assert not (stage / 'untrained.log').exists() and not (stage / 'untrained.json').exists()
    assert 'evaluating the model before training' not in stdout
    assert 'untrained' not in json.loads((stage / 'result.json').read_text())
    [row] = json.loads((cwd / 'wd/results.json').read_text())['rows']
    assert set(row['metrics']) == {'mIoU'}
    # the results table's row (not the published numbers' rows below it): no bracketed value
    rows = re.findall(rf'^\| {method} \| [\d.]+ .*$', (cwd / 'wd/results.md').read_text(), re.M)
    assert len(rows) == 1 and '(' not in rows[0], rows


# ---------------------------------------------------------------- transfer without a pretrain stage
@pytest.mark.slow
def test_transfer_without_pretraining_names_the_fix(tmp_path):
    out = benchmark(tmp_path, tmp_path / 'data', '--methods', 'mae', '--stages', 'ade',
                    '--work-dir', 'wd')
    assert out.returncode == 1 and out.stderr.splitlines() == [
        f'error: mae: no finished pretrain stage in {tmp_path / "wd"} and no --pretrained: run '
        'the pretrain stage first (add it: --stages pretrain ade) or pass --pretrained '
        'CHECKPOINT (with one --methods entry)']
    assert not any(tmp_path.iterdir())  # nothing made: no data, no work dir, no stage
    # an interrupted pretraining is not a finished one
    (tmp_path / 'wd/mae/pretrain').mkdir(parents=True)
    (tmp_path / 'wd/mae/pretrain/last_checkpoint').write_text('x/iter_2.pth')
    out = benchmark(tmp_path, tmp_path / 'data', '--methods', 'mae', '--stages', 'ade',
                    '--work-dir', 'wd')
    assert out.returncode == 1
    assert out.stderr.startswith(f'error: mae: its pretrain stage in {tmp_path}/wd/mae/pretrain '
                                 'did not finish and no --pretrained: run the pretrain stage')
    assert sorted(p.name for p in (tmp_path / 'wd').rglob('*')) == [
        'last_checkpoint', 'mae', 'pretrain']


# ---------------------------------------------------------------- interrupted, then run again
PRETRAIN = ['--methods', 'mae', '--stages', 'pretrain', 'ade', '--work-dir', 'wd',
            '--cfg-options', 'train_cfg.max_iters=4', 'default_hooks.logger.interval=1']


def interrupted(cwd, root, args, when):
    """tools/benchmark.py, sent SIGTERM (alone: it passes it on to the stage) at the first
    output line ``when`` accepts; returns (exit status, output)."""
    proc = benchmark(cwd, root, *args, popen=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if when(line):
                proc.send_signal(signal.SIGTERM)
                break
        seen.append(proc.communicate(timeout=600)[0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, ''.join(seen)


def scalars(stage):
    """{run folder: {iteration: loss}} of a stage's training runs, in their order."""
    runs = {}
    for path in sorted(Path(stage).glob('*/vis_data/scalars.json')):
        rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
        losses = {r['iter']: r['loss'] for r in rows if 'loss' in r}
        if losses:
            runs[path.parts[-3]] = losses
    return runs


def mtimes(*paths):
    return {p: p.stat().st_mtime_ns for p in paths}


@pytest.fixture(scope='module')
def resumed(tmp_path_factory, small_root):
    """MAE pretraining (4 iterations) -> ADE20K, stopped by SIGTERM in the pretraining (after
    iteration 1's log line) and in the ADE20K stage's evaluation before training, each time run
    again with the same command; the states on disk and outputs after each run."""
    cwd = tmp_path_factory.mktemp('resume')
    wd, seen = cwd / 'wd', {}
    status, out = interrupted(cwd, small_root, PRETRAIN,
                              lambda ln: '[mae | pretrain] train 1/4' in ln)
    seen['pretrain stopped'] = dict(status=status, out=out, scalars=scalars(wd / 'mae/pretrain'),
                                    last=(wd / 'mae/pretrain/last_checkpoint').read_text())
    status, out = interrupted(
        cwd, small_root, PRETRAIN,
        lambda ln: ln.startswith('  $ ') and 'lomar_transfer.cli.test' in ln and ' none ' in ln)
    seen['untrained stopped'] = dict(status=status, out=out,
                                     ade=sorted(p.name for p in (wd / 'mae/ade').iterdir()))
    seen['finished'] = dict(out=ok(benchmark(cwd, small_root, *PRETRAIN)),
                            results=json.loads((wd / 'results.json').read_text()))
    return cwd, seen


@pytest.mark.slow
def test_resume_after_sigterm_in_pretraining(resumed):
    cwd, seen = resumed
    stage = cwd / 'wd/mae/pretrain'
    first = seen['pretrain stopped']
    assert first['status'] == 143, first['out'][-3000:]
    assert 'stopped by SIGTERM after a checkpoint; run the same command again' in first['out']
    stopped_at = int(re.fullmatch(rf'{stage}/iter_(\d+)\.pth', first['last'].strip())[1])
    assert 1 <= stopped_at < 4  # mid-training (3 iterations of margin for a slow reader)
    # the rerun continued from that checkpoint: one run of iterations 1..k, one of k+1..4
    runs = list(scalars(stage).values())
    assert len(runs) == 2 and runs[0] == next(iter(first['scalars'].values()))
    assert list(runs[0]) == list(range(1, stopped_at + 1))
    assert list(runs[1]) == list(range(stopped_at + 1, 5))
    assert f'Load checkpoint from {stage}/iter_{stopped_at}.pth' in \
        (stage / 'train.log').read_text()
    # the loss curve of the results (and of loss_curves.png): both runs, full, once each
    merged = {**runs[0], **runs[1]}
    assert bm.loss_curve(stage) == sorted(merged.items())
    [row] = [r for r in seen['finished']['results']['rows'] if r['method'] == 'mae']
    pre = row['stages']['pretrain']
    assert pre['losses'] == [runs[0][1], runs[1][4]]
    assert pre['checkpoint'] == f'{stage}/iter_4.pth'
    assert (cwd / 'wd/loss_curves.png').read_bytes()[:4] == b'\x89PNG'


@pytest.mark.slow  # its fixture runs the benchmark
def test_resume_after_sigterm_in_the_untrained_evaluation(resumed):
    cwd, seen = resumed
    stopped = seen['untrained stopped']
    assert stopped['status'] == 143, stopped['out'][-3000:]
    # stopped before the ADE20K stage trained: nothing of it but its start
    assert 'untrained.json' not in stopped['ade'] and 'train.log' not in stopped['ade']
    out = seen['finished']['out']
    assert '[mae | pretrain] complete, skipped' in out
    assert '[mae | ade] evaluating the model before training' in out
    stage = cwd / 'wd/mae/ade'
    result = json.loads((stage / 'result.json').read_text())
    pre = json.loads((cwd / 'wd/mae/pretrain/result.json').read_text())
    assert result['pretrained'] == pre['checkpoint']
    assert 'mIoU' in result['untrained'] and 'mIoU' in result['metrics']
    assert loads(stage / 'train.log') == [(52, 52, pre['checkpoint'])]
    assert result['checkpoint'] == f'{stage}/iter_4.pth'


@pytest.mark.slow
def test_resume_between_training_and_testing(resumed, small_root):
    """ADE20K trained, its test not run (result and metrics gone), and the same work dir run
    with the transfer stages alone: ADE20K is tested without training again, the new stage
    (linear) starts from the finished pretraining of the work dir."""
    cwd, _ = resumed
    wd = cwd / 'wd'
    ade = wd / 'mae/ade'
    before = json.loads((ade / 'result.json').read_text())
    (ade / 'result.json').unlink()
    (ade / 'metrics.json').unlink()
    kept = mtimes(ade / 'iter_4.pth', ade / 'train.log', ade / 'untrained.log',
                  wd / 'mae/pretrain/iter_4.pth', wd / 'mae/pretrain/result.json')
    runs = sorted(ade.glob('2*'))
    out = ok(benchmark(cwd, small_root, '--methods', 'mae', '--stages', 'ade', 'linear',
                       '--work-dir', 'wd', '--no-untrained', '--cfg-options',
                       'train_cfg.max_iters=2', 'default_hooks.logger.interval=1'))
    assert f'[mae | ade] trained before ({ade}/iter_4.pth): evaluating' in out
    assert mtimes(*kept) == kept  # no training, no reloading of the pretraining
    assert len(sorted(ade.glob('2*'))) == len(runs) + 1  # one run more: the test
    result = json.loads((ade / 'result.json').read_text())
    assert result['metrics'] == before['metrics'] and result['checkpoint'] == before['checkpoint']
    # the linear probe: from the work dir's pretraining, no pretrain stage in this run
    pre = json.loads((wd / 'mae/pretrain/result.json').read_text())
    linear = json.loads((wd / 'mae/linear/result.json').read_text())
    assert linear['pretrained'] == pre['checkpoint']
    assert loads(wd / 'mae/linear/train.log')[0][2] == pre['checkpoint']
    rows = json.loads((wd / 'results.json').read_text())['rows']
    assert set(rows[0]['stages']) == {'ade', 'linear'}


def test_maect_phases_resume_where_they_stopped(tmp_path, monkeypatch):
    """The paper recipe's MAE-CT stage (head phase in head/, then the tuning from its
    checkpoint), stopped in every phase. The runs are simulated by what mmengine's Runner does
    with the command (resume: from ``load_from`` when given, else from ``last_checkpoint``)."""
    monkeypatch.setitem(bm.STAGES['maect'].configs, 'synthetic_head',
                        bm.STAGES['maect'].configs['synthetic'])  # a head phase, as in 'paper'
    ckpt = tmp_path / 'mae.pth'
    ckpt.write_bytes(b'x')
    suite = cli.Suite(cli.parse_args(['--methods', 'mae', '--stages', 'maect', '--gpus', '0',
                                      '--pretrained', str(ckpt), '--work-dir',
                                      str(tmp_path / 'wd')]))
    stage = tmp_path / 'wd/mae/maect'
    head = stage / 'head'
    log, stop = [], {}

    def fake_run(cmd, logfile, label):
        opts = cmd[cmd.index('--cfg-options') + 1:] if '--cfg-options' in cmd else []
        if cmd[2] != cli.TRAIN:  # an evaluation: writes --out
            log.append(('eval', cmd[4]))
            if stop.pop('eval', False):
                raise SystemExit(143)
            Path(cmd[cmd.index('--out') + 1]).write_text('{"knn/top1": 50.0}')
            return
        work = Path(cmd[cmd.index('--work-dir') + 1])
        load_from = next((o.split('=', 1)[1] for o in opts if o.startswith('load_from=')), None)
        last = work / 'last_checkpoint'
        if '--resume' in cmd:  # mmengine Runner.load_or_resume
            start = load_from or last.read_text()
        else:
            start = load_from or 'init'
        log.append((work.name, start))
        done = 1 if stop.pop(work.name, False) else 2
        last.write_text(f'{work}/iter_{done}.pth')
        if done == 1:
            raise SystemExit(143)

    monkeypatch.setattr(suite, 'run', fake_run)

    def run_stage():
        log.clear()
        try:
            return suite.run_stage('mae', 'maect', str(ckpt), 0)
        except SystemExit as e:
            assert e.code == 143
            return None

    stop['head'] = True  # 1: stopped in the head phase
    assert run_stage() is None
    assert log == [('eval', str(ckpt)), ('head', 'init')]
    stop['maect'] = True  # 2: the head phase resumes and ends; stopped in the tuning
    assert run_stage() is None
    assert log == [('head', f'{head}/iter_1.pth'), ('maect', f'{head}/iter_2.pth')]
    stop['eval'] = True  # 3: the tuning resumes from its own checkpoint; stopped in the test
    assert run_stage() is None
    assert log == [('maect', f'{stage}/iter_1.pth'), ('eval', f'{stage}/iter_2.pth')]
    result = run_stage()  # 4: only the test
    assert log == [('eval', f'{stage}/iter_2.pth')]
    assert result['checkpoint'] == f'{stage}/iter_2.pth' and result['metrics'] and \
        result['untrained']


def test_the_runner_reads_stages_from_their_declaration():
    """What the runner, the table and the plots do with a stage comes from its ``Stage``
    declaration (bm.STAGES): no comparison with a stage's name in their code (a new stage, or a
    renamed one, would otherwise need each such place found and changed)."""
    import ast
    names = set(bm.STAGES)
    wrong = []
    for path in (REPO / 'lomar_transfer/benchmark.py', REPO / 'lomar_transfer/cli/benchmark.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            for side in [node.left, *node.comparators]:
                elts = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                if any(isinstance(e, ast.Constant) and e.value in names for e in elts):
                    wrong.append(f'{path.relative_to(REPO)}:{node.lineno}: '
                                 f'{ast.get_source_segment(path.read_text(), node)}')
    assert not wrong, '\n'.join(wrong)
    # every table column and every metric the runner prints belong to one declared stage
    assert [c[:3] for c in bm.COLUMNS] == [(s.name, key, header) for s in bm.STAGES.values()
                                           for key, header, _ in s.columns]


def test_help_says_what_each_option_does(capsys):
    """Every option of lomar-benchmark has its help (what the methods and stages are, where
    results go); lomar-train takes the stock tools' --resume PATH and --amp; lomar-test says
    what the `none` checkpoint is."""
    from lomar_transfer.cli import test, train
    for main in (cli.parse_args, train.parse_args, test.parse_args):
        with pytest.raises(SystemExit):
            main(['--help'])
    text = ' '.join(capsys.readouterr().out.split())  # (argparse wraps the lines)
    assert 'pretraining baseline: scratch' in text and 'mIoU' in text
    assert 'WORK_DIR/results.{md,csv,json}' in text
    assert 'or none: the model as the config initialises it' in text
    args = train.parse_args(['cfg.py', '--resume', 'work_dirs/x/iter_4.pth', '--amp'])
    assert args.resume == 'work_dirs/x/iter_4.pth' and args.amp
    assert train.parse_args(['cfg.py', '--resume']).resume == 'auto'
    assert train.parse_args(['cfg.py']).resume is None
