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


def official_knn(train_f, train_y, test_f, test_y, k=10, t=0.07, standardize=True):
    """MAE-CT knn.py:38-87, the whole similarity matrix at once."""
    if standardize:
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


def permuted(y, seed):
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]


CHANCE_TOLERANCE = 5.  # points; measured spread (std) over 8-20 label permutations: 0.9-1.5


def test_evaluations_are_at_chance_when_labels_say_nothing():
    """The same clustered features, train and test labels each randomly permuted: whatever
    structure the features have, no evaluation may beat chance (10 classes: 10%) by more than
    CHANCE_TOLERANCE points, while on the true labels each is near 100. (Permuting the test
    labels too keeps the test points independent: a probe trained on permuted labels predicts one
    label per cluster, and scoring that against true labels is chance only in expectation, by
    whole clusters.) A test-label leak, scoring the train set, or voting with the test labels
    each lands far from 10."""
    chance = 100 / 10
    train_f, train_y = clustered(50)
    test_f, test_y = clustered(50, seed=1)
    assert knn_accuracy(train_f, train_y, test_f, test_y) > 90
    for s in range(5):  # measured over 20 permutations: 9.5 +- 1.5, in [7.2, 12.6]
        acc = knn_accuracy(train_f, permuted(train_y, s), test_f, permuted(test_y, 100 + s))
        assert abs(acc - chance) <= CHANCE_TOLERANCE, (s, acc)
    train_f, train_y = clustered(30, noise=.5)
    test_f, test_y = clustered(50, noise=.5, seed=1)
    assert linear_probe_accuracy(train_f, train_y, test_f, test_y, epochs=20) == 100
    # the best of the 10 heads (the official sweep's report): 10.8 +- 1.2 over 8, at most 13
    acc = linear_probe_accuracy(train_f, permuted(train_y, 0), test_f, permuted(test_y, 100),
                                epochs=20)
    assert abs(acc - chance) <= CHANCE_TOLERANCE, acc
    train_f, train_y = clustered(5, noise=3.)  # the low-shot classifier: 5 images per class
    test_f, test_y = clustered(50, noise=3., seed=1)
    assert logistic_regression_accuracy(train_f, train_y, test_f, test_y) > 70
    acc = logistic_regression_accuracy(train_f, permuted(train_y, 0), test_f,
                                       permuted(test_y, 100))  # 9.5 +- 0.9 over 8
    assert abs(acc - chance) <= CHANCE_TOLERANCE, acc
    # clustering: the best one-to-one matching of 10 clusters to random labels is above 1/C
    # (16.4 +- 0.5 over 8 permutations of 500 labels), NMI 4.2 +- 0.4
    f, y = clustered(50, noise=.3)
    assert clustering_scores(f, y)[0] > 80  # (k-means may merge two clusters: 88)
    acc, nmi = clustering_scores(f, permuted(y, 0))
    assert acc < chance + 2 * CHANCE_TOLERANCE and nmi < 10, (acc, nmi)


def test_predictions_do_not_depend_on_the_test_labels():
    """Scored against the 10 cyclic relabellings (y + j) % 10 of the test set, a classifier whose
    predictions ignore the test labels is right for each test image under exactly one of them:
    the 10 accuracies sum to exactly 100%. A use of the test labels in training, voting or head
    selection that changes a prediction (a leak) breaks the sum. For the linear probe each head
    separately (the reported best head is picked on the test labels, as the official sweep
    does)."""
    train_f, train_y = clustered(30, noise=2.)
    test_f, test_y = clustered(10, noise=2., seed=1)
    shifts = [(test_y + j) % 10 for j in range(10)]
    total = sum(knn_accuracy(train_f, train_y, test_f, y) for y in shifts)
    assert total == pytest.approx(100, abs=1e-3)
    total = sum(logistic_regression_accuracy(train_f[::6], train_y[::6], test_f, y)
                for y in shifts)  # 5 per class
    assert total == pytest.approx(100, abs=1e-3)
    heads = torch.tensor([linear_probe_accuracy(train_f, train_y, test_f, y, epochs=5,
                                                return_all=True) for y in shifts])
    assert torch.allclose(heads.sum(0), torch.full((10, ), 100.), atol=1e-3)
    assert heads[0].max() > 90  # and they do learn the task


def weighted_vote_case(a_similarity):
    """A test point (1, 0) whose 10 nearest train points are one of class 1 at cosine similarity
    1 and nine of class 0 at ``a_similarity`` (two farther ones of class 2 are not among them)."""
    angle = math.acos(a_similarity)
    train = [[1., 0.]] + [[math.cos(angle), (-1)**i * math.sin(angle)] for i in range(9)]
    train += [[-1., 0.], [0., -1.]]
    labels = torch.tensor([1] + [0] * 9 + [2, 2])
    return torch.tensor(train), labels, torch.tensor([[1., 0.]])


def test_knn_votes_are_weighted_by_exp_similarity_over_0_07():
    """MAE-CT's k-NN (knn.py:80-87, k = 10 in eval_knn.py:90) weighs each of the 10 neighbours
    by exp(similarity / 0.07) (DINO's and solo-learn's weighting), not one vote each. The nine
    class-0 neighbours win a plain majority vote; the one class-1 neighbour at similarity 1 wins
    the weighted vote iff exp((1 - s) / T) > 9, i.e. T < (1 - s) / ln 9. Two cases put that
    threshold at T = 0.075 and at T = 0.065: only a temperature in between (0.07) answers
    class 1 in the first and class 0 in the second; uniform votes, similarity-proportional
    votes, or another temperature get one of them wrong."""
    kw = dict(standardize=False)  # the geometry as built (standardising is tested above)
    for threshold, want in ((0.075, 1), (0.065, 0)):
        train, labels, test = weighted_vote_case(1 - threshold * math.log(9))
        majority = int(labels[(test @ train.T).topk(10).indices[0]].mode().values)
        assert majority == 0
        assert knn_accuracy(train, labels, test, torch.tensor([want]), **kw) == 100, threshold
        assert knn_accuracy(train, labels, test, torch.tensor([1 - want]), **kw) == 0
        assert official_knn(train, labels, test, torch.tensor([want]), standardize=False) == 100
    # the temperature is the weighting's: flat weights give the majority back
    train, labels, test = weighted_vote_case(1 - 0.075 * math.log(9))
    assert knn_accuracy(train, labels, test, torch.tensor([0]), temperature=100., **kw) == 100


@pytest.mark.slow
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
