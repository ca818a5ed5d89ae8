"""Label-efficient evaluation on frozen features, by MAE-CT's protocol (ml-jku/MAE-CT):
k-NN, linear probe, low-shot logistic regression on split files, clustering.

Scale: ImageNet has 1.28M train and 50k test images; the full similarity matrix would take
~256 GB. The k-NN works in chunks (memory ``test_chunk x (train_chunk + k)``), and when
launched on several ranks (``tools/dist_feature_eval.sh``) each rank holds a shard of the
train features and the ranks merge their top-k. Clustering runs on the test set only (N x
classes distances).
"""
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine import dist

# MAE-CT yamls/probe.yaml:56-135: one linear head per learning rate (before x batch/256)
PROBE_LRS = (0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01)


@torch.no_grad()
def extract_features(backbone, dataloader, preprocess):
    """(features (N, C), labels (N,)) of a dataset; ``preprocess`` turns a batch dict into the
    model's input tensor (the model's data preprocessor)."""
    backbone.eval()
    feats, labels = [], []
    for batch in dataloader:
        data = preprocess(batch, False)
        out = backbone(data['inputs'])
        feats.append((out[-1] if isinstance(out, (tuple, list)) else out).float().cpu())
        labels.append(torch.stack([s.gt_label[0] for s in data['data_samples']]).cpu())
    return torch.cat(feats), torch.cat(labels)


def feature_stats(train_f, chunk=65536):
    """Per-channel mean and unbiased std of the train features over all ranks (float64 sums,
    accumulated over row chunks: no full-size float64 copy)."""
    n = torch.tensor(float(len(train_f)), dtype=torch.float64)
    s = torch.zeros(train_f.shape[1], dtype=torch.float64)
    ss = torch.zeros_like(s)
    for start in range(0, len(train_f), chunk):
        x = train_f[start:start + chunk].double()
        s += x.sum(0)
        ss += (x * x).sum(0)
    for t in (n, s, ss):
        dist.all_reduce(t)
    mean = s / n
    var = (ss - n * mean**2) / (n - 1)
    return mean.float(), var.clamp_min(0).sqrt().float()


def standardise(train_f, test_f, eps=1e-5):
    """Both sets scaled by the train set's per-channel mean and std + eps (MAE-CT
    metrics/functional/knn.py:38-42)."""
    mean, std = feature_stats(train_f)
    return (train_f - mean) / (std + eps), (test_f - mean) / (std + eps)


def _standardised_unit_rows(x, mean, std, chunk=65536):
    """(x - mean) / std, each row L2-normalised: one new tensor, filled chunk by chunk."""
    out = torch.empty_like(x)
    for start in range(0, len(x), chunk):
        rows = x[start:start + chunk]
        if mean is not None:
            rows = (rows - mean) / std
        out[start:start + chunk] = F.normalize(rows, dim=1)
    return out


def knn_topk(test_f, train_f, k, test_chunk=1024, train_chunk=65536):
    """(similarities, train indices), each (N_test, k), of the k largest ``test_f @ train_f.T``
    per test row, in chunks: never more than ``test_chunk x (train_chunk + k)`` at once."""
    k = min(k, len(train_f))
    sims, ids = [], []
    for t in range(0, len(test_f), test_chunk):
        q = test_f[t:t + test_chunk]
        best_s = q.new_empty(len(q), 0)
        best_i = torch.empty(len(q), 0, dtype=torch.long)
        for start in range(0, len(train_f), train_chunk):
            s = q @ train_f[start:start + train_chunk].T
            s, pos = s.topk(min(k, s.shape[1]), dim=1)  # the chunk's best, then the merge
            s, i = torch.cat([best_s, s], 1), torch.cat([best_i, pos + start], 1)
            best_s, pos = s.topk(min(k, s.shape[1]), dim=1)
            best_i = i.gather(1, pos)
        sims.append(best_s)
        ids.append(best_i)
    return torch.cat(sims), torch.cat(ids)


def knn_accuracy(train_f, train_y, test_f, test_y, k=10, temperature=0.07, standardize=True,
                 test_chunk=1024, train_chunk=65536):
    """Top-1 (%) of MAE-CT's k-NN (metrics/functional/knn.py:38-87, k = 10 in eval_knn.py:90):
    standardise with the train statistics, L2-normalise, and let the k most similar train
    images vote for their class with weight ``exp(similarity / 0.07)`` (knn.py:80-87: DINO's
    weighting, not one vote per neighbour). The standardisation is that of the official k-NN
    logger (loggers/knn_metrics_logger.py:83-92, ``batch_normalize=True``); the stand-alone
    eval_knn.py:90 leaves it out: ``standardize=False``.

    Distributed: ``train_f``/``train_y`` are this rank's shard of the train set, ``test_f``/
    ``test_y`` the whole test set on every rank; the ranks' top-k are merged, so the result is
    that of the whole train set on one process.
    """
    mean, std = feature_stats(train_f) if standardize else (None, None)
    std = std + 1e-5 if standardize else None
    train_f = _standardised_unit_rows(train_f, mean, std)
    test_f = _standardised_unit_rows(test_f, mean, std)
    sims, ids = knn_topk(test_f, train_f, k, test_chunk, train_chunk)
    labels = train_y[ids]
    if dist.get_world_size() > 1:  # merge the shards' candidates: top-k of the union
        sims = torch.cat(dist.all_gather(sims), 1)
        labels = torch.cat(dist.all_gather(labels), 1)
        sims, pos = sims.topk(min(k, sims.shape[1]), dim=1)
        labels = labels.gather(1, pos)
    num_classes = torch.tensor(int(max(train_y.max(), test_y.max())) + 1)
    dist.all_reduce(num_classes, op='max')
    votes = torch.zeros(len(test_f), int(num_classes))
    votes.scatter_add_(1, labels, (sims / temperature).exp())
    return (votes.argmax(1) == test_y).float().mean().item() * 100


def _probe_lr(step, total, warmup):
    # MAE-CT legacy schedules (probe.yaml:60-63): linear from 0 over the warm-up, then cosine
    if step < warmup:
        return step / max(warmup - 1, 1)
    return (1 + math.cos(math.pi * (step - warmup) / max(total - warmup - 1, 1))) / 2


def linear_probe_accuracy(train_f, train_y, test_f, test_y, lrs=PROBE_LRS, epochs=50,
                          batch_size=1024, warmup=0.1, seed=0, return_all=False):
    """Top-1 (%) of MAE-CT's linear probe (yamls/probe.yaml) on frozen features: a BatchNorm
    without affine parameters, then a linear layer (trunc-normal std 0.01, zero bias), trained
    with SGD (momentum 0.9, no weight decay) in mini-batches for ``epochs`` epochs, warm-up over
    the first 10% then cosine, one head per learning rate in ``lrs`` (each x batch/256); the
    best head counts, as the official sweep reports. The official probe augments the images
    (crop + flip) in every epoch; here the features of the test-time view are reused (for the
    image-level probe use configs/maect/maect-probe_*.py).
    """
    g = torch.Generator().manual_seed(seed)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    n, dims = train_f.shape
    bs = min(batch_size, n)
    steps_per_epoch = n // bs
    total = epochs * steps_per_epoch
    warmup_steps = int(warmup * total)
    base = torch.tensor(lrs) * bs / 256
    bn = torch.nn.BatchNorm1d(dims, affine=False)
    weight = torch.empty(len(lrs), num_classes, dims)
    torch.nn.init.trunc_normal_(weight, std=0.01, generator=g)
    weight.requires_grad_()
    bias = torch.zeros(len(lrs), num_classes, requires_grad=True)
    buffers = [torch.zeros_like(weight), torch.zeros_like(bias)]
    step = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for b in range(steps_per_epoch):
            ids = order[b * bs:(b + 1) * bs]
            x = bn.train()(train_f[ids])
            logits = torch.einsum('nd,lcd->lnc', x, weight) + bias[:, None]
            # sum over heads: each head gets the gradient of its own mean loss
            loss = F.cross_entropy(logits.flatten(0, 1), train_y[ids].repeat(len(lrs)),
                                   reduction='sum') / len(ids)
            gw, gb = torch.autograd.grad(loss, [weight, bias])
            lr = base * _probe_lr(step, total, warmup_steps)
            with torch.no_grad():
                for p, grad, buf in zip((weight, bias), (gw, gb), buffers):
                    buf.mul_(0.9).add_(grad)  # torch SGD, momentum 0.9, dampening 0
                    p.sub_(lr.view(-1, *[1] * (p.ndim - 1)) * buf)
            step += 1
    with torch.no_grad():
        logits = torch.einsum('nd,lcd->lnc', bn.eval()(test_f), weight) + bias[:, None]
        acc = (logits.argmax(-1) == test_y).float().mean(1) * 100
    return acc.tolist() if return_all else acc.max().item()


def read_split_file(path):
    """Train image names of a low-shot split, one per line (SimCLRv2 ``1percent.txt``, MSN
    ``imagenet_subsets1/5imgs_class.txt``: e.g. ``n01440764_10026.JPEG``; the class is the name
    before the first ``_``). Blank lines and ``#`` comments are skipped."""
    names = [ln.strip() for ln in Path(path).read_text().splitlines()]
    names = [n for n in names if n and not n.startswith('#')]
    if not names:
        raise ValueError(f'low-shot split file {path} lists no image names')
    return names


def split_indices(image_paths, names, path='split'):
    """Indices of the train images a split file names (matched by file name)."""
    where = {Path(p).name: i for i, p in enumerate(image_paths)}
    missing = [n for n in names if Path(n).name not in where]
    if missing:
        raise ValueError(f'{path}: {len(missing)} of its {len(names)} images are not in the '
                         f'train set, e.g. {missing[:3]}; point the config at the ImageNet '
                         'train folder the split was made from')
    return torch.tensor(sorted(where[Path(n).name] for n in names))


def low_shot_indices(labels, per_class=None, fraction=None, seed=0):
    """Indices of a random low-shot subset: ``per_class`` examples of every class (fewer if a
    class has fewer), or a ``fraction`` of each class (at least one; 0.01 is the 1% setting).
    For published numbers use the published split files (:func:`read_split_file`)."""
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c in labels.unique():
        ids = (labels == c).nonzero().flatten()
        n = per_class if fraction is None else max(1, round(fraction * len(ids)))
        picked.append(ids[torch.randperm(len(ids), generator=g)[:n]])
    return torch.cat(picked).sort().values


def _row_centred_unit(x):
    x = x.double()
    return F.normalize(x - x.mean(1, keepdim=True), dim=1)


def fit_logistic_regression(x, y, num_classes, lambd, max_iter=300):
    """(C, D) weights minimising mean cross-entropy + ``lambd / 2 * ||W||^2`` (no intercept),
    float64 L-BFGS: the problem is strictly convex, so this is the optimum cyanure reaches."""
    w = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=max_iter, tolerance_grad=1e-10,
                            tolerance_change=1e-12, history_size=20,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T, y) + lambd / 2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def logistic_regression_accuracy(train_f, train_y, test_f, test_y, lambd=0.00025,
                                 preprocess_test=False, max_iter=300):
    """Top-1 (%) of MAE-CT's low-shot classifier (loggers/offline_logistic_regression_logger.py
    :59-78, MSN's logistic_eval.py): multinomial logistic regression without intercept and an
    L2 penalty ``lambd / N / 2 * ||W||^2``, on train features centred and L2-normalised per row
    (:func:`fit_logistic_regression`). MAE-CT scores the raw test features
    (``preprocess_test=False``); MSN preprocesses them as the train ones.
    """
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    x = _row_centred_unit(train_f)
    w = fit_logistic_regression(x, train_y, num_classes, lambd / len(x), max_iter)
    xt = _row_centred_unit(test_f) if preprocess_test else test_f.double()
    return ((xt @ w.T).argmax(1) == test_y).float().mean().item() * 100


def kmeans(x, k, iters=50, seed=0):
    """Cluster ids of k-means++-initialised Lloyd iterations on L2-normalised features."""
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(x, dim=1)
    centres = x[torch.randint(len(x), (1, ), generator=g)]
    for _ in range(1, k):  # k-means++: far points are likelier centres
        d = torch.cdist(x, centres).min(dim=1).values**2
        centres = torch.cat([centres, x[torch.multinomial(d + 1e-12, 1, generator=g)]])
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(dim=1)
        for j in range(k):
            if (assign == j).any():
                centres[j] = x[assign == j].mean(0)
    return torch.cdist(x, centres).argmin(dim=1)


def clustering_scores(features, labels, seed=0):
    """Unsupervised accuracy (%) and NMI (%) of k-means with as many clusters as classes on
    standardised features; clusters matched to classes one-to-one by the Hungarian algorithm
    for the accuracy. MAE-CT reports both; its repository has no clustering code, so this is the
    usual protocol (e.g. Van Gansbeke et al. SCAN)."""
    from scipy.optimize import linear_sum_assignment
    classes, y = labels.unique(return_inverse=True)
    assign = kmeans(standardise(features, features)[0], len(classes), seed=seed)
    counts = torch.zeros(len(classes), len(classes), dtype=torch.float64)
    counts.index_put_((assign, y), torch.ones(len(y), dtype=torch.float64), accumulate=True)
    rows, cols = linear_sum_assignment(-counts.numpy())
    acc = counts[rows, cols].sum().item() / len(y) * 100
    p = counts / counts.sum()
    pa, py = p.sum(1, keepdim=True), p.sum(0, keepdim=True)
    nz = p > 0
    mi = (p[nz] * (p[nz] / (pa @ py)[nz]).log()).sum()
    ent = lambda q: -(q[q > 0] * q[q > 0].log()).sum()  # noqa: E731
    nmi = (2 * mi / (ent(pa) + ent(py))).item() * 100 if ent(pa) + ent(py) > 0 else 100.
    return acc, nmi


def clustering_accuracy(features, labels, seed=0):
    """Unsupervised accuracy (%) of :func:`clustering_scores`."""
    return clustering_scores(features, labels, seed)[0]
