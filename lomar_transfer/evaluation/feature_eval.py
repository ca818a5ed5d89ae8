"""Label-efficient evaluation on frozen features: k-NN, linear probe (also low-shot) and
clustering accuracy, as reported by MAE-CT (arXiv 2304.10520) and DINO."""
import torch
import torch.nn.functional as F


@torch.no_grad()
def extract_features(backbone, dataloader, preprocess):
    """(features (N, C), labels (N,)) of a dataset; ``preprocess`` turns a batch dict into the
    model's input tensor (the model's data preprocessor)."""
    backbone.eval()
    feats, labels = [], []
    for batch in dataloader:
        data = preprocess(batch, False)
        out = backbone(data['inputs'])
        feats.append(out[-1] if isinstance(out, (tuple, list)) else out)
        labels.append(torch.stack([s.gt_label[0] for s in data['data_samples']]))
    return torch.cat(feats).float(), torch.cat(labels)


def standardise(train_f, test_f, eps=1e-5):
    """Both feature sets scaled by the train set's per-channel mean and std."""
    mean, std = train_f.mean(0), train_f.std(0) + eps
    return (train_f - mean) / std, (test_f - mean) / std


def knn_accuracy(train_f, train_y, test_f, test_y, k=20, temperature=0.07, standardize=True):
    """Top-1 (%) of weighted k-NN voting on cosine similarity (DINO's protocol). With
    ``standardize`` (MAE-CT's protocol) the features are first standardised with the train
    set's statistics: MAE features share a large common direction that otherwise dominates
    every cosine similarity."""
    if standardize:
        train_f, test_f = standardise(train_f, test_f)
    train_f, test_f = F.normalize(train_f, dim=1), F.normalize(test_f, dim=1)
    k = min(k, len(train_f))
    sim, idx = (test_f @ train_f.T).topk(k, dim=1)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    votes = torch.zeros(len(test_f), num_classes)
    votes.scatter_add_(1, train_y[idx], (sim / temperature).exp())
    return (votes.argmax(1) == test_y).float().mean().item() * 100


def linear_probe_accuracy(train_f, train_y, test_f, test_y, epochs=200, lr=0.1, seed=0):
    """Top-1 (%) of a linear classifier trained on frozen, standardised features (full-batch
    AdamW with weight decay): the quick probe used for low-shot settings."""
    g = torch.Generator().manual_seed(seed)
    x, xt = standardise(train_f, test_f)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    w = torch.nn.Linear(x.shape[1], num_classes)
    torch.nn.init.normal_(w.weight, std=0.01, generator=g)
    torch.nn.init.zeros_(w.bias)
    opt = torch.optim.AdamW(w.parameters(), lr=lr, weight_decay=1e-3)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(w(x), train_y).backward()
        opt.step()
    with torch.no_grad():
        return (w(xt).argmax(1) == test_y).float().mean().item() * 100


def low_shot_indices(labels, per_class=None, fraction=None, seed=0):
    """Indices of a random low-shot subset: ``per_class`` examples of every class (fewer if a
    class has fewer), or a ``fraction`` of each class (at least one; 0.01 is the 1% setting)."""
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c in labels.unique():
        ids = (labels == c).nonzero().flatten()
        n = per_class if fraction is None else max(1, round(fraction * len(ids)))
        picked.append(ids[torch.randperm(len(ids), generator=g)[:n]])
    return torch.cat(picked).sort().values


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


def clustering_accuracy(features, labels, seed=0):
    """Unsupervised accuracy (%): k-means with as many clusters as classes on standardised
    features, clusters matched to classes one-to-one by the Hungarian algorithm."""
    from scipy.optimize import linear_sum_assignment
    classes, y = labels.unique(return_inverse=True)
    assign = kmeans(standardise(features, features)[0], len(classes), seed=seed)
    counts = torch.zeros(len(classes), len(classes))
    counts.index_put_((assign, y), torch.ones(len(y)), accumulate=True)
    rows, cols = linear_sum_assignment(-counts.numpy())
    return counts[rows, cols].sum().item() / len(y) * 100
