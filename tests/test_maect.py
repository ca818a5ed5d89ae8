"""MAE-CT pieces: NNCLR's nearest-neighbour lookup and InfoNCE against hand computations, the
FIFO support queue, the head-only phase, the frozen-feature evaluations (k-NN, low-shot,
clustering), and tuning a briefly pretrained MAE on synthetic data raising its k-NN accuracy."""
import json
import math
import subprocess
import sys

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
    assert knn_accuracy(train_f, train_y, test_f, torch.roll(test_y, 5), k=5) < 50


def build_synthetic_maect(source='mae', **overrides):
    """The CPU-sized MAE-CT model of ``source``'s config, randomly initialised, in train mode."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    cfg = Config.fromfile(REPO / f'configs/maect/maect-{source}_vit-tiny-p8_synthetic.py')
    cfg.model.backbone.pretrained = None
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
        assert vit.pretrained or cfg.load_from.endswith('-head_in1k/iter_' +
                                                        cfg.load_from.split('iter_')[1])
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


def test_tuning_raises_knn_of_a_briefly_pretrained_mae(tmp_path):
    """MAE for 60 iterations, then the synthetic MAE-CT config (20 head + 80 tuning
    iterations): k-NN top-1 on 100 held-out images rises, and so does the feature linear probe
    (MAE-CT's evaluation protocol, seed 0: k-NN 78 -> 80, probe 51 -> 61, 5-shot 53 -> 73)."""
    from lomar_transfer.cli.feature_eval import evaluate  # (tools/feature_eval.py's code)

    from lomar_transfer.datasets.synthetic import make_imagenet
    data = tmp_path / 'imagenet'
    make_imagenet(data, seed=1, num_train_per_class=30, num_val_per_class=10)

    def train(config, work_dir, *options):
        cmd = [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir),
               '--cfg-options', f'train_dataloader.dataset.data_root={data}', *options]
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    def knn(checkpoint):
        torch.manual_seed(0)
        return evaluate(REPO / 'configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py',
                        str(checkpoint), cfg_options={
                            f'{split}_dataloader.dataset.data_root': str(data)
                            for split in ('train', 'val', 'test')})

    train('configs/mae/mae_vit-tiny-p8_synthetic.py', tmp_path / 'mae',
          'train_cfg.max_iters=60', 'default_hooks.checkpoint.interval=60')
    before = knn(tmp_path / 'mae/iter_60.pth')
    train('configs/maect/maect-mae_vit-tiny-p8_synthetic.py', tmp_path / 'ct',
          f'model.backbone.pretrained={tmp_path}/mae/iter_60.pth')
    after = knn(tmp_path / 'ct/iter_100.pth')
    report = {'before': before, 'after': after}
    print(json.dumps(report))
    assert after['knn/top1'] > before['knn/top1'], report
    assert after['linear/top1'] > before['linear/top1'], report


VIT_B = 'configs/maect/maect-mae_vit-base-p16_8xb128-coslr-20e'


def test_official_phases_of_the_vit_b_recipe():
    """MAE-CT's two runs (yamls/stage2_maect_prepare_head, stage3_maect_contrastive_tuning):
    each with its own 20% warm-up and cosine at 1e-4 per 256 views (two views per image)."""
    from mmengine.config import Config
    head = Config.fromfile(REPO / f'{VIT_B}-head_in1k.py')
    tune = Config.fromfile(REPO / f'{VIT_B}-tune_in1k.py')
    iters = 20 * (1281167 // 1024)
    for cfg in (head, tune):
        assert cfg.optim_wrapper.optimizer.lr == 1e-4 * 2 * 1024 / 256
        assert cfg.train_cfg.max_iters == iters
        warm, cos = cfg.param_scheduler
        assert warm.end == cos.begin == int(0.2 * iters) and cos.end == iters
        assert warm.start_factor == 1 / (warm.end + 1)
    assert head.model.backbone.frozen_stages == 12 and head.model.head.topk == 1
    assert head.model.get('target_momentum') is None  # the online projector fills the queue
    assert tune.model.backbone.frozen_stages == 6 and tune.model.head.topk == 20
    assert tune.model.target_momentum == 0.99
    assert tune.load_from.startswith('work_dirs/maect-mae_vit-base-p16_8xb128-coslr-20e-head')
    assert tune.custom_hooks == [dict(type='EMAHook', momentum=1e-4, update_buffers=True)]


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
