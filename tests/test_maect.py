"""MAE-CT pieces: NNCLR's nearest-neighbour lookup and InfoNCE against hand computations, the
FIFO support queue, the head-only phase, the frozen-feature evaluations (k-NN, low-shot,
clustering; their negative cases are in test_feature_eval.py), tuning a briefly pretrained MAE
on synthetic data against continuing its MAE pretraining as long, and the ViT-B/L/H recipes and
the probe against the official yamls, value by value."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from lomar_transfer.evaluation import (clustering_accuracy, knn_accuracy, linear_probe_accuracy,
                                       low_shot_indices)
from lomar_transfer.models.heads.nnclr_head import NNCLRHead, info_nce, nearest_neighbours


def test_nearest_neighbour_is_the_true_one():
    torch.manual_seed(0)
    queue = F.normalize(torch.randn(50, 8), dim=1)
    z = F.normalize(torch.randn(5, 8), dim=1)
    got = nearest_neighbours(z, queue)
    for i in range(5):
        sims = [float((z[i] * queue[j]).sum()) for j in range(50)]
        assert torch.equal(got[i], queue[max(range(50), key=sims.__getitem__)])


def test_neighbour_excludes_own_entries_and_draws_among_topk():
    queue = F.normalize(torch.tensor([[1., 0.], [.9, .1], [.8, .3], [0., 1.]]), dim=1)
    z = queue[:1].clone()
    own = torch.tensor([[True, False, False, False]])  # queue row 0 is z's own projection
    assert torch.equal(nearest_neighbours(z, queue, exclude=own), queue[1:2])
    torch.manual_seed(0)
    picks = {tuple(nearest_neighbours(z.expand(64, 2), queue, topk=3).round(decimals=4)
                   .tolist()[i]) for i in range(64)}
    assert picks == {tuple(r) for r in queue[:3].round(decimals=4).tolist()}  # never row 3

    head = NNCLRHead(feat_dims=2, queue_size=4)
    head.enqueue(queue, torch.tensor([7, 8, 9, 10]))
    assert torch.equal(head.neighbours(z, torch.tensor([7])), queue[1:2])
    assert torch.equal(head.neighbours(z, torch.tensor([8])), queue[:1])


def test_info_nce_equals_the_hand_computation():
    a = F.normalize(torch.tensor([[1., 0.], [0., 1.], [1., 1.]]), dim=1)
    b = F.normalize(torch.tensor([[1., .2], [-.3, 1.], [.5, 1.]]), dim=1)
    tau = 0.5
    expected = 0.
    for i in range(3):
        logits = [float(a[i] @ b[j]) / tau for j in range(3)]
        expected += -math.log(math.exp(logits[i]) / sum(math.exp(v) for v in logits))
    assert abs(info_nce(a, b, tau).item() - expected / 3) < 1e-6


def test_head_loss_uses_queue_neighbours_and_updates_the_queue():
    torch.manual_seed(0)
    head = NNCLRHead(feat_dims=4, queue_size=6, temperature=0.2, exclude_self=False)
    queue0 = head.queue.clone()
    z1, z2 = torch.randn(4, 4), torch.randn(4, 4)
    n1, n2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    expected = (info_nce(nearest_neighbours(n1, queue0), n2, 0.2)
                + info_nce(nearest_neighbours(n2, queue0), n1, 0.2)) / 2
    assert torch.allclose(head.loss(z1, z2), expected)
    assert torch.allclose(head.queue[:4], n1) and torch.equal(head.queue[4:], queue0[4:])
    head.loss(z2, z1)  # 4 more rows: the pointer wraps around (FIFO)
    assert torch.allclose(head.queue[4:], n2[:2]) and torch.allclose(head.queue[:2], n2[2:])
    assert int(head.queue_ptr) == 2


def test_feature_evaluations_on_separable_data():
    torch.manual_seed(0)
    centres = torch.eye(4) * 5
    def sample(n):
        y = torch.arange(4).repeat_interleave(n)
        return centres[y] + 0.3 * torch.randn(len(y), 4), y
    train_f, train_y = sample(10)
    test_f, test_y = sample(5)
    assert knn_accuracy(train_f, train_y, test_f, test_y, k=5) == 100
    assert linear_probe_accuracy(train_f, train_y, test_f, test_y) == 100
    ids = low_shot_indices(train_y, 2)
    assert len(ids) == 8 and torch.equal(train_y[ids].bincount(), torch.full((4, ), 2))
    ids = low_shot_indices(train_y, fraction=0.3)  # 3 of each class's 10
    assert torch.equal(train_y[ids].bincount(), torch.full((4, ), 3))
    assert len(low_shot_indices(train_y, fraction=0.01)) == 4  # at least one per class
    # clusters are matched to classes whatever their order
    assert clustering_accuracy(test_f, (test_y + 1) % 4) == 100
    # every test label moved to the next class: not one right (chance and leaks: test_feature_eval)
    assert knn_accuracy(train_f, train_y, test_f, torch.roll(test_y, 5), k=5) == 0


def build_synthetic_maect(source='mae', **overrides):
    """The CPU-sized MAE-CT model of ``source``'s config, randomly initialised, in train mode."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    cfg = Config.fromfile(REPO / f'configs/maect/maect-{source}_vit-tiny-p8_synthetic.py')
    cfg.model.backbone.init_cfg = None
    cfg.model.update(overrides)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model.train()


def test_maect_configs_build_and_tune_only_the_top_blocks():
    from mmengine.config import Config

    paths = sorted(p for p in (REPO / 'configs/maect').glob('maect-*.py') if 'probe' not in p.name)
    assert len(paths) == 13
    for path in paths:
        cfg = Config.fromfile(path)
        vit = cfg.model.backbone
        assert cfg.model.type == 'lomar_transfer.MAECT' and 0 < vit.frozen_stages
        # tuning starts from a pretrained encoder, or from the head phase's checkpoint
        assert (vit.init_cfg or {}).get('checkpoint') or cfg.load_from.endswith(
            '-head_in1k/iter_' + cfg.load_from.split('iter_')[1])
    model = build_synthetic_maect('lomar', head_init_iters=0)  # straight to tuning
    views = [torch.randn(4, 3, 112, 112), torch.randn(4, 3, 112, 112)]
    loss = model.loss(views, None)['loss']
    loss.backward()
    assert torch.isfinite(loss)
    vit = model.backbone
    assert vit.layers[0].attn.rpe_k is not None  # LoMaR's encoder
    frozen = vit.frozen_stages
    assert all(p.grad is None for p in vit.layers[:frozen].parameters())
    assert all(p.grad is not None for p in vit.layers[frozen:].parameters())


def test_head_phase_trains_only_the_head_then_the_encoder_too():
    model = build_synthetic_maect(head_init_iters=2, target_momentum=0.9)
    views = [torch.randn(4, 3, 112, 112), torch.randn(4, 3, 112, 112)]
    top = model.backbone.layers[-1].mlp.fc2.weight
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(3):
        opt.zero_grad(set_to_none=True)
        model.loss(views, None)['loss'].backward()
        assert (top.grad is not None) == (step >= 2)
        assert all(p.grad is not None for p in model.neck.parameters())
        assert all(p.grad is None for p in model.target_neck.parameters())
        with torch.no_grad():  # what this step enqueued: the first view by the EMA projector
            f = model.backbone(views[0])
            target = F.normalize(model.target_neck(f)[0], dim=1)
            online = F.normalize(model.neck(f)[0], dim=1)
        opt.step()
    assert int(model.step) == 3 and 'step' in model.state_dict()  # resumes where it stopped
    assert torch.allclose(model.head.queue[8:12], target, atol=1e-5)
    assert not torch.allclose(model.head.queue[8:12], online, atol=1e-3)


# The run-to-run noise of "metric of the MAE-CT run - metric of the control run" (points): the
# standard deviation over seeds of each run's metric, combined, sqrt(sd_maect^2 + sd_control^2),
# measured over 6 seeds of the whole test (both runs and the MAE they start from): k-NN 2.1 and
# 1.0, linear probe 2.0 and 0.8, 5-shot 1.4 and 1.1.
TUNING_NOISE = {'knn/top1': 2.5, 'linear/top1': 2.5, 'lowshot5/top1': 2.}


@pytest.mark.slow
def test_contrastive_tuning_beats_as_long_a_continued_mae_pretraining(tmp_path, monkeypatch):
    """A 60-iteration MAE is the starting point of two 100-iteration runs: MAE-CT (the synthetic
    config: 20 head-only + 80 tuning iterations) and the control, the same MAE pretraining
    continued for 100 iterations from the same checkpoint (same images, same seed, a fresh
    warm-up and cosine as the MAE-CT run has): whatever 100 more iterations of training give,
    the control gets too, so the difference is what the contrastive objective adds. Frozen
    features by MAE-CT's protocol (k-NN, linear probe, 5-shot logistic regression on the 300
    train images) scored on 1000 held-out images: MAE-CT must beat the control by more than
    TUNING_NOISE on each, and the starting MAE.

    Measured over seeds 0-5 (--seed s for all three runs), gain over the control: k-NN
    6.9 +- 1.7 (min 3.7), linear probe 6.7 +- 1.6 (min 3.8), 5-shot 7.1 +- 1.6 (min 4.7); seed 0
    (this test): k-NN 57.5 -> 64.8 (MAE continued: 57.5), probe 52.8 -> 58.6 (51.0), 5-shot
    34.3 -> 43.9 (35.7). Scored on 300 images, k-NN beat the control by only 1.0 and 5-shot by
    1.7 in one seed of six, and clustering and 1-shot not reliably at all: hence 1000 test
    images, and no assertion on clustering or 1-shot.

    Every run writes under tmp_path only: it is the working directory, so a relative default
    (work_dirs/...) would land there, and nothing but the runs' own folders may appear."""
    from lomar_transfer.cli.feature_eval import evaluate  # (tools/feature_eval.py's code)
    from lomar_transfer.datasets.synthetic import make_imagenet
    monkeypatch.chdir(tmp_path)
    data = tmp_path / 'imagenet'
    make_imagenet(data, seed=1, num_train_per_class=30, num_val_per_class=100)
    runs = []

    def train(config, work_dir, *options):
        cmd = [sys.executable, str(REPO / 'tools/train.py'), str(REPO / config), '--work-dir',
               str(tmp_path / work_dir), '--seed', '0', '--cfg-options',
               f'train_dataloader.dataset.data_root={data}', *options]
        out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        runs.append(work_dir)  # and nothing else written, work_dirs/ least of all
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(['imagenet', *runs])

    def features(checkpoint):
        torch.manual_seed(0)
        return evaluate(REPO / 'configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py',
                        str(tmp_path / checkpoint), cfg_options={
                            f'{split}_dataloader.dataset.data_root': str(data)
                            for split in ('train', 'val', 'test')})

    mae = 'configs/mae/mae_vit-tiny-p8_synthetic.py'
    train(mae, 'mae', 'train_cfg.max_iters=60', 'default_hooks.checkpoint.interval=60')
    train('configs/maect/maect-mae_vit-tiny-p8_synthetic.py', 'ct',
          f'model.backbone.init_cfg.checkpoint={tmp_path}/mae/iter_60.pth')
    train(mae, 'mae_more', f'load_from={tmp_path}/mae/iter_60.pth')  # 100 iterations
    report = {'before': features('mae/iter_60.pth'), 'maect': features('ct/iter_100.pth'),
              'mae_more': features('mae_more/iter_100.pth')}
    print(json.dumps(report))
    for key, noise in TUNING_NOISE.items():
        gain = report['maect'][key] - report['mae_more'][key]
        assert gain > noise, (key, gain, report)
        assert report['maect'][key] > report['before'][key], (key, report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ct', 'imagenet', 'mae', 'mae_more']


VIT_B = 'configs/maect/maect-mae_vit-base-p16_8xb128-coslr-20e'
IMAGENET_TRAIN = 1281167
# The official recipes, ml-jku/MAE-CT (commit 6c82cb6) yamls/: phase 1 = stage2_maect_prepare_head
# (S2), phase 2 = stage3_maect_contrastive_tuning (S3), for base16 / large16 / huge14. Our configs
# per (phase, size):
MAECT_RECIPES = {
    ('S2', 'base16'): f'{VIT_B}-head_in1k.py',
    ('S3', 'base16'): f'{VIT_B}-tune_in1k.py',
    ('S2', 'large16'): 'configs/maect/maect-mae_vit-large-p16_8xb128-coslr-20e-head_in1k.py',
    ('S3', 'large16'): 'configs/maect/maect-mae_vit-large-p16_8xb128-coslr-20e-tune_in1k.py',
    ('S2', 'huge14'): 'configs/maect/maect-mae_vit-huge-p14_8xb64-coslr-20e-head_in1k.py',
    ('S3', 'huge14'): 'configs/maect/maect-mae_vit-huge-p14_8xb64-coslr-30e-tune_in1k.py',
}
# quantity: (yaml line(s) for base16, large16, huge14; value for base16, large16, huge14). One
# line or value stands for all three. Lines of yamls/stage2_maect_prepare_head/<size>.yaml:
OFFICIAL_S2 = {
    'n_views': ('10', 2),
    'crop_interpolation': ('12', 'bicubic'),  # kd_random_resized_crop
    'crop_scale': ('14-16', (0.08, 1.0)),
    'crop_size': ('17', 224),
    'flip_prob': ('18', 0.5),  # kd_random_horizontal_flip (p = 0.5)
    'patch_size': ('24', (16, 16, 14)),
    'embedding_dim': ('25', (768, 1024, 1280)),
    'depth': ('26', (12, 24, 32)),
    'attention_heads': ('27', (12, 16, 16)),
    'frozen_blocks': ('28', (12, 24, 32)),  # is_frozen: true (the whole encoder)
    'head_kind': ('37', 'nnclr_head'),  # no EMA projector: the online one fills the queue
    'topk': ('37', 1),  # nnclr_head.py:9 topk=0: argmax (contrastive_head_base.py:127-128)
    'proj_hidden_dim': ('38', 2048),
    'pred_hidden_dim': ('39', 4096),
    'output_dim': ('40', 256),
    'queue_size': ('41', 65536),
    'temperature': ('42', 0.15),
    'pooling': ('44', ('mean_patch', 'class_token', 'class_token')),
    'lr': ('47', 1e-4),  # per 256 views: x 2 views x batch / 256 (trainer_base.py:113-133)
    'betas': ('48-50', (0.9, 0.95)),
    'weight_decay': ('51', 1e-5),
    'head_weight_decay': ('51', 1e-5),
    'warmup_percent': ('53', 20),
    'max_epochs': ('61', 20),
    'effective_batch_size': ('62', (1024, 1024, 512)),
    'precision': ('63', 'bfloat16'),
    'layer_decay': ('45-51', 1.0),  # no param_group_modifiers (and the encoder is frozen)
}
# Lines of yamls/stage3_maect_contrastive_tuning/<size>.yaml (they differ between the sizes):
OFFICIAL_S3 = {
    'n_views': ('10', 2),
    'crop_interpolation': ('12', 'bicubic'),
    'crop_scale': ('14-16', (0.08, 1.0)),
    'crop_size': ('17', 224),
    'flip_prob': ('18', 0.5),
    'patch_size': ('24', (16, 16, 14)),
    'embedding_dim': ('25', (768, 1024, 1280)),
    'depth': ('26', (12, 24, 32)),
    'attention_heads': ('27', (12, 16, 16)),
    'lr': ('30', 1e-4),  # encoder; the head's: 74 / 80 / 84
    'weight_decay': (('31', '34', '34'), 0.05),
    'betas': (('32-34', '31-33', '31-33'), (0.9, 0.95)),
    'layer_decay': ('36', 0.65),
    'warmup_percent': ('39', 20),  # encoder; the head's: 80 / 86 / 90
    'frozen_blocks': (('46-53', '46-58', '46-62'), (6, 12, 16)),  # block_idxs 0..n-1
    'head_kind': (('62', '68', '72'), 'nnclr_ema_queue_head'),
    'proj_hidden_dim': (('63', '69', '73'), 2048),
    'pred_hidden_dim': (('64', '70', '74'), 4096),
    'output_dim': (('65', '71', '75'), 256),
    'queue_size': (('66', '72', '76'), 65536),
    'temperature': (('67', '73', '77'), (0.15, 0.2, 0.3)),
    'target_factor': (('68', '74', '78'), (0.99, 0.99, 0.995)),
    'topk': (('69', '75', '79'), 20),
    'pooling': (('71', '77', '81'), ('mean_patch', 'class_token', 'class_token')),
    'head_lr': (('74', '80', '84'), 1e-4),
    'head_weight_decay': (('78', '84', '88'), 1e-5),
    'max_epochs': (('94', '100', '105'), (20, 20, 30)),
    'effective_batch_size': (('95', '101', '104'), (1024, 1024, 512)),
    'precision': (('96', '102', '106'), 'bfloat16'),
    'encoder_ema': (('115-116', '121-122', '125-126'), 0.9999),  # the evaluated weights
}


def maect_recipe(path):
    """The quantities of one of our MAE-CT configs in the terms of the official yamls."""
    import re

    from mmengine.config import Config

    from lomar_transfer.models.backbones.vision_transformer import ARCH_SETTINGS
    cfg = Config.fromfile(REPO / path)
    gpus, per_gpu = map(int, re.search(r'_(\d+)xb(\d+)', path).groups())
    assert cfg.train_dataloader.batch_size == per_gpu  # the name tells the truth
    batch = gpus * per_gpu
    model, vit, opt = cfg.model, cfg.model.backbone, cfg.optim_wrapper
    dims, depth, heads, _ = ARCH_SETTINGS[vit.arch]
    multiview = cfg.train_dataloader.dataset.pipeline[1]
    crop, flip = multiview.transforms[0]
    warm, cos = cfg.param_scheduler
    max_iters = cfg.train_cfg.max_iters
    keys = opt.paramwise_cfg.get('custom_keys', {})
    head_decay = {opt.optimizer.weight_decay * keys.get(k, {}).get('decay_mult', 1.)
                  for k in ('neck.', 'head.')}
    assert len(head_decay) == 1  # projector and predictor alike
    ema = [h for h in cfg.get('custom_hooks', []) if h.type == 'EMAHook']
    epochs = max_iters / (IMAGENET_TRAIN // batch)  # whole epochs of whole batches
    # the projector's width feeds the predictor and the queue
    assert model.neck.out_channels == model.head.predictor.in_channels == \
        model.head.predictor.out_channels == model.head.feat_dims
    assert model.neck.in_channels == dims and model.neck.num_layers == 3
    assert model.head.predictor.num_layers == 2 and not model.head.predictor.with_last_bn
    return {
        'n_views': multiview.num_views,
        'crop_interpolation': crop.interpolation,
        'crop_scale': tuple(crop.crop_ratio_range),
        'crop_size': crop.scale,
        'flip_prob': flip.prob if flip.type == 'RandomFlip' else None,
        'patch_size': vit.patch_size,
        'embedding_dim': dims,
        'depth': depth,
        'attention_heads': heads,
        'frozen_blocks': vit.frozen_stages,
        'head_kind': 'nnclr_ema_queue_head' if model.get('target_momentum') else 'nnclr_head',
        'topk': model.head.topk,
        'proj_hidden_dim': model.neck.hid_channels,
        'pred_hidden_dim': model.head.predictor.hid_channels,
        'output_dim': model.neck.out_channels,
        'queue_size': model.head.queue_size,
        'temperature': model.head.temperature,
        'target_factor': model.get('target_momentum'),
        'pooling': {'avg_featmap': 'mean_patch', 'cls_token': 'class_token'}[vit.out_type],
        'lr': opt.optimizer.lr / (2 * batch / 256),
        'head_lr': opt.optimizer.lr / (2 * batch / 256),  # layer decay spares neck and head
        'betas': tuple(opt.optimizer.betas),
        'weight_decay': opt.optimizer.weight_decay,
        'head_weight_decay': head_decay.pop(),
        'layer_decay': opt.paramwise_cfg.layer_decay_rate,
        'warmup_percent': 100 * warm.end / max_iters,
        'max_epochs': epochs,
        'effective_batch_size': batch,
        'precision': opt.get('dtype') if opt.type == 'AmpOptimWrapper' else 'float32',
        'encoder_ema': 1 - ema[0].momentum if ema else None,
    }, cfg


def test_recipes_match_the_official_yamls():
    """Every value the official yamls set for ViT-B/16, L/16 and H/14, both phases, against our
    configs (tables OFFICIAL_S2 / OFFICIAL_S3: value and yaml line), then the schedule's shape:
    warm-up lr * (u + 1) / (W + 1) (linear_increasing.py with exclude_first/exclude_last) over
    the first 20%, then cosine to 0, each phase with its own (a fresh optimizer in phase 2)."""
    sizes = ('base16', 'large16', 'huge14')
    wrong = []
    for (phase, size), path in MAECT_RECIPES.items():
        ours, cfg = maect_recipe(path)
        table = OFFICIAL_S2 if phase == 'S2' else OFFICIAL_S3
        for quantity, (lines, values) in table.items():
            i = sizes.index(size)
            line = lines if isinstance(lines, str) else lines[i]
            want = values[i] if isinstance(values, tuple) and len(values) == 3 else values
            got = ours[quantity]
            if not (got == pytest.approx(want) if isinstance(want, float) else got == want):
                wrong.append(f'{path}: {quantity} = {got}, official {want} '
                             f'({phase} {size}.yaml:{line})')
        if phase == 'S2':
            assert cfg.model.get('head_init_iters', 0) == 0  # the whole run is the head phase
        warm, cos = cfg.param_scheduler
        iters = cfg.train_cfg.max_iters
        assert warm.type == 'LinearLR' and warm.begin == 0 and not warm.by_epoch
        assert warm.start_factor == pytest.approx(1 / (warm.end + 1))
        assert cos.type == 'CosineAnnealingLR' and cos.begin == warm.end and cos.end == iters
        assert cos.T_max == iters - warm.end and cos.get('eta_min', 0) == 0
        if phase == 'S3':  # from the head phase's last checkpoint of the same size
            head_path = MAECT_RECIPES['S2', size]
            head_iters = maect_recipe(head_path)[1].train_cfg.max_iters
            assert cfg.load_from == (f'work_dirs/{Path(head_path).stem}/iter_{head_iters}.pth')
            assert cfg.model.backbone.init_cfg is None
            assert cfg.custom_hooks == [dict(type='EMAHook', momentum=1e-4, update_buffers=True)]
    assert not wrong, '\n'.join(wrong)
    # the other encoders' recipes are the MAE ViT-B/16 one
    for source in ('lomar', 'cae'):
        for phase in ('head', 'tune'):
            mae = maect_recipe(f'{VIT_B}-{phase}_in1k.py')[0]
            other = maect_recipe(f'{VIT_B}-{phase}_in1k.py'.replace('mae_', f'{source}_'))[0]
            assert other == mae, (source, phase)


# yamls/probe.yaml (ViT-L/16 there; the same protocol for every size): quantity: (line, value)
OFFICIAL_PROBE = {
    'crop_size': ('9', 224),
    'crop_scale': ('10-12', (0.08, 1.0)),
    'crop_interpolation': ('13', 'bicubic'),
    'flip_prob': ('14', 0.5),
    'test_resize': ('22-23', 256),  # kd_resize (short side)
    'test_resize_interpolation': ('21', 'bicubic'),
    'test_crop': ('24-25', 224),
    'head_init_std': ('53-54', 0.01),
    'lr': ('58', 0.1),  # per 256 images (optimizers/__init__.py:30-31, linear_lr_scaler.py:10)
    'momentum': ('59', 0.9),
    'weight_decay': ('56-59', 0.),  # 'wd0': none set (torch SGD's default 0)
    'warmup_percent': ('61', 10),
    'max_epochs': ('145', 50),
    'effective_batch_size': ('146', 1024),
    'precision': ('147', 'bfloat16'),
}


def test_probe_recipe_matches_the_official_yaml():
    from mmengine.config import Config
    cfg = Config.fromfile(REPO / 'configs/maect/maect-probe_vit-base-p16_4xb256-coslr-50e_in1k.py')
    crop, flip = cfg.train_dataloader.dataset.pipeline[1:3]
    assert crop.type == 'RandomResizedCrop' and flip.type == 'RandomFlip'
    resize, centre = cfg.test_dataloader.dataset.pipeline[1:3]
    assert resize.type == 'ResizeEdge' and resize.edge == 'short' and centre.type == 'CenterCrop'
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_dataloader.dataset.pipeline
    batch = 4 * cfg.train_dataloader.batch_size
    warm, cos = cfg.param_scheduler
    opt = cfg.optim_wrapper
    init, = cfg.model.head.init_cfg
    ours = {
        'crop_size': crop.scale,
        'crop_scale': tuple(crop.get('crop_ratio_range', (0.08, 1.0))),  # mmpretrain's default
        'crop_interpolation': crop.get('interpolation', 'bilinear'),
        'flip_prob': flip.prob,
        'test_resize': resize.scale,
        'test_resize_interpolation': resize.get('interpolation', 'bilinear'),
        'test_crop': centre.crop_size,
        'head_init_std': init.std if init.type == 'TruncNormal' else None,
        'lr': opt.optimizer.lr / (batch / 256),
        'momentum': opt.optimizer.momentum,
        'weight_decay': opt.optimizer.weight_decay,
        'warmup_percent': 100 * warm.end / cfg.train_cfg.max_epochs,
        'max_epochs': cfg.train_cfg.max_epochs,
        'effective_batch_size': batch,
        'precision': opt.dtype,
    }
    wrong = [f'{q} = {ours[q]}, official {want} (probe.yaml:{line})'
             for q, (line, want) in OFFICIAL_PROBE.items() if ours[q] != pytest.approx(want)]
    assert not wrong, '\n'.join(wrong)
    # a BatchNorm without affine parameters before the linear layer (linear_head.py:18-23),
    # warm-up from 0, then cosine to 0
    assert cfg.model.neck.type == 'ClsBatchNormNeck' and cfg.model.neck.eps == 1e-5
    assert warm.start_factor < 1e-6 and cos.begin == warm.end
    assert cos.end == cfg.train_cfg.max_epochs


def test_tuning_starts_from_the_head_phase():
    """The tuning phase loads the head phase's projector into its EMA projector as well
    (nnclr_ema_queue_head.py:11-17), and its queue."""
    head = build_synthetic_maect(head_init_iters=0)
    with torch.no_grad():
        for p in head.neck.parameters():
            p.normal_()
        head.head.queue.normal_()
    tune = build_synthetic_maect(target_momentum=0.99)
    tune.load_state_dict(head.state_dict(), strict=False)
    for a, b in zip(head.neck.state_dict().values(), tune.target_neck.module.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(tune.head.queue, head.head.queue)


def test_tuning_optimizer_decays_head_weights_only():
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, DefaultScope
    cfg = Config.fromfile(REPO / f'{VIT_B}-tune_in1k.py')
    cfg.model.neck.norm_cfg = cfg.model.head.predictor.norm_cfg = dict(type='BN1d')
    cfg.optim_wrapper.type = 'OptimWrapper'
    cfg.optim_wrapper.pop('dtype')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    g = {gr['param_name']: gr for gr in groups}
    assert g['neck.fc0.weight']['weight_decay'] == pytest.approx(1e-5)
    assert g['neck.bn0.weight']['weight_decay'] == g['head.predictor.bn0.bias']['weight_decay'] == 0
    assert g['backbone.layers.11.mlp.fc1.weight']['weight_decay'] == 0.05
    assert g['backbone.layers.11.mlp.fc1.bias']['weight_decay'] == 0
    assert g['backbone.layers.11.mlp.fc1.weight']['lr'] == pytest.approx(8e-4 * 0.65)
    assert 'backbone.layers.5.mlp.fc1.weight' not in g  # frozen
