"""MAE-CT pieces: NNCLR's nearest-neighbour lookup and InfoNCE against hand computations, the
FIFO support queue, and the frozen-feature evaluations (k-NN, low-shot, clustering)."""
import math

import torch
import torch.nn.functional as F

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
    head = NNCLRHead(feat_dims=4, queue_size=6, temperature=0.2)
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
    # clusters are matched to classes whatever their order
    assert clustering_accuracy(test_f, (test_y + 1) % 4) == 100
    assert knn_accuracy(train_f, train_y, test_f, torch.roll(test_y, 5), k=5) < 50


def test_maect_configs_build_and_tune_only_the_top_blocks():
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from conftest import REPO
    paths = sorted((REPO / 'configs/maect').glob('*.py'))
    assert len(paths) == 8
    for path in paths:
        cfg = Config.fromfile(path)
        vit = cfg.model.backbone
        assert cfg.model.type == 'lomar_transfer.MAECT' and 0 < vit.frozen_stages
        assert vit.pretrained  # tuning starts from a pretrained encoder
    cfg = Config.fromfile(REPO / 'configs/maect/maect-lomar_vit-tiny-p8_synthetic.py')
    cfg.model.backbone.pretrained = None
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    views = [torch.randn(4, 3, 112, 112), torch.randn(4, 3, 112, 112)]
    loss = model.loss(views, None)['loss']
    loss.backward()
    assert torch.isfinite(loss)
    vit = model.backbone
    assert vit.blocks[0].attn.rpe_k is not None  # LoMaR's encoder
    assert all(p.grad is None for p in vit.blocks[:2].parameters())
    assert all(p.grad is not None for p in vit.blocks[2:].parameters())
