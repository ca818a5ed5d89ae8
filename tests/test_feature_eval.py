"""MAE-CT's frozen-feature evaluation: the chunked (and rank-sharded) k-NN equals the plain
computation of MAE-CT's metrics/functional/knn.py, the probe and low-shot classifier follow
yamls/probe.yaml and the logistic-regression logger, and each can fail."""
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from lomar_transfer.evaluation import (clustering_scores, knn_accuracy, knn_topk,
                                       linear_probe_accuracy, logistic_regression_accuracy,
                                       read_split_file, split_indices)
from lomar_transfer.evaluation.feature_eval import _probe_lr, fit_logistic_regression


def official_knn(train_f, train_y, test_f, test_y, k=10, t=0.07):
    """MAE-CT knn.py:38-87, the whole similarity matrix at once."""
    mean, std = train_f.mean(0), train_f.std(0) + 1e-5
    train_f, test_f = (train_f - mean) / std, (test_f - mean) / std
    train_f, test_f = F.normalize(train_f, dim=1), F.normalize(test_f, dim=1)
    sim, idx = (test_f @ train_f.T).topk(k, dim=1)
    logits = torch.zeros(len(test_f), int(train_y.max()) + 1)
    for i in range(len(test_f)):
        for s, j in zip(sim[i], idx[i]):
            logits[i, train_y[j]] += (s / t).exp()
    return (logits.argmax(1) == test_y).float().mean().item() * 100


def clustered(n_per_class, classes=10, dims=32, noise=2., seed=0):
    centres = torch.randn(classes, dims, generator=torch.Generator().manual_seed(0)) * 2
    y = torch.arange(classes).repeat_interleave(n_per_class)
    g = torch.Generator().manual_seed(seed + 1)
    return centres[y] + noise * torch.randn(len(y), dims, generator=g), y


@pytest.mark.parametrize('test_chunk, train_chunk', [(7, 33), (1000, 100000), (1, 1)])
def test_chunked_knn_equals_the_whole_matrix(test_chunk, train_chunk):
    train_f, train_y = clustered(50)
    test_f, test_y = clustered(10, seed=1)
    want = official_knn(train_f, train_y, test_f, test_y)
    assert 30 < want < 100  # a task where neighbours matter
    got = knn_accuracy(train_f, train_y, test_f, test_y, test_chunk=test_chunk,
                       train_chunk=train_chunk)
    assert got == want
    ref = F.normalize(test_f, dim=1) @ F.normalize(train_f, dim=1).T
    sims, ids = knn_topk(F.normalize(test_f, dim=1), F.normalize(train_f, dim=1), 10,
                         test_chunk, train_chunk)
    assert torch.allclose(sims, ref.topk(10, dim=1).values)
    assert torch.equal(ids, ref.topk(10, dim=1).indices)


def test_knn_negative_cases():
    train_f, train_y = clustered(50)
    test_f, test_y = clustered(10, seed=1)
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0))]
    assert knn_accuracy(train_f, shuffled, test_f, test_y) < 25  # chance: 10
    # the weights decide: one very close neighbour of class 1 beats two far ones of class 0
    train = torch.tensor([[1., 0.02], [1., -.5], [1., .55]])
    labels = torch.tensor([1, 0, 0])
    test = torch.tensor([[1., 0.]])
    kw = dict(k=3, standardize=False)
    assert knn_accuracy(train, labels, test, torch.tensor([1]), **kw) == 100
    assert knn_accuracy(train, labels, test, torch.tensor([1]), temperature=100., **kw) == 0


def test_knn_sharded_over_two_ranks_equals_one_process(tmp_path):
    script = tmp_path / 'knn_ranks.py'
    script.write_text(f'''
import sys, torch
sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
import torch.distributed as tdist
tdist.init_process_group('gloo')
from test_feature_eval import clustered
from lomar_transfer.evaluation import knn_accuracy
rank, world = tdist.get_rank(), tdist.get_world_size()
train_f, train_y = clustered(50)
test_f, test_y = clustered(10, seed=1)
acc = knn_accuracy(train_f[rank::world], train_y[rank::world], test_f, test_y, train_chunk=64)
if rank == 0:
    print('ACC', acc)
tdist.barrier()  # both ranks done before either tears gloo down (an early exit can abort the other)
tdist.destroy_process_group()
''')
    out = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                          '--master_port', '29531', str(script)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = float(out.stdout.split('ACC')[-1])
    train_f, train_y = clustered(50)
    test_f, test_y = clustered(10, seed=1)
    assert got == official_knn(train_f, train_y, test_f, test_y)


def test_probe_schedule_and_sweep():
    # legacy MAE-CT schedules: linear warm-up from exactly 0, then cosine to exactly 0
    assert _probe_lr(0, 100, 10) == 0 and _probe_lr(9, 100, 10) == 1
    assert _probe_lr(99, 100, 10) == pytest.approx(0, abs=1e-12)
    assert _probe_lr(54, 100, 10) == pytest.approx((1 + math.cos(math.pi * 44 / 89)) / 2)
    train_f, train_y = clustered(30, noise=.5)
    test_f, test_y = clustered(10, noise=.5, seed=1)
    accs = linear_probe_accuracy(train_f, train_y, test_f, test_y, epochs=20, return_all=True)
    assert len(accs) == 10 and max(accs) == 100
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0))]
    assert linear_probe_accuracy(train_f, shuffled, test_f, test_y, epochs=20) < 35


def test_logistic_regression_reaches_the_optimum():
    train_f, train_y = clustered(5, noise=3.)
    test_f, test_y = clustered(10, noise=3., seed=1)
    acc = logistic_regression_accuracy(train_f, train_y, test_f, test_y)
    assert 40 < acc <= 100
    # the fitted weights are the optimum of the convex objective: zero gradient there
    x = train_f.double()
    x = F.normalize(x - x.mean(1, keepdim=True), dim=1)
    lam = 0.00025 / len(x)
    w = fit_logistic_regression(x, train_y, 10, lam).requires_grad_()
    (F.cross_entropy(x @ w.T, train_y) + lam / 2 * (w**2).sum()).backward()
    assert w.grad.abs().max() < 1e-6
    w_short = fit_logistic_regression(x, train_y, 10, lam, max_iter=2).requires_grad_()
    (F.cross_entropy(x @ w_short.T, train_y) + lam / 2 * (w_short**2).sum()).backward()
    assert w_short.grad.abs().max() > 1e-4  # the check can fail
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0))]
    assert logistic_regression_accuracy(train_f, shuffled, test_f, test_y) < 30


def test_split_files(tmp_path):
    f = tmp_path / '2imgs_class.txt'
    f.write_text('# MSN split\nn01_3.JPEG\nn01_1.JPEG\n\nn02_7.JPEG\n')
    names = read_split_file(f)
    assert names == ['n01_3.JPEG', 'n01_1.JPEG', 'n02_7.JPEG']
    paths = [f'/data/train/{n.split("_")[0]}/{n}'
             for n in ('n01_1.JPEG', 'n01_2.JPEG', 'n01_3.JPEG', 'n02_7.JPEG')]
    assert split_indices(paths, names).tolist() == [0, 2, 3]
    with pytest.raises(ValueError, match='1 of its 2 images are not in the train set'):
        split_indices(paths, ['n01_1.JPEG', 'n03_1.JPEG'], f)
    (tmp_path / 'empty.txt').write_text('\n')
    with pytest.raises(ValueError, match='lists no image names'):
        read_split_file(tmp_path / 'empty.txt')


def test_clustering_accuracy_and_nmi():
    f, y = clustered(20, noise=.3)
    acc, nmi = clustering_scores(f, (y + 3) % 10)  # any naming of the clusters
    assert acc == 100 and nmi == pytest.approx(100)
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    acc, nmi = clustering_scores(f, shuffled)
    assert acc < 30 and nmi < 30
