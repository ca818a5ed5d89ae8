"""NNCLR's head (Dwibedi et al., ICCV 2021), the objective of MAE-CT (arXiv 2304.10520): the
positive of a view is a nearest neighbour of its projection in a FIFO support queue of past
projections, contrasted with the prediction of the other view by InfoNCE."""
import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_rank, is_distributed
from mmengine.model import BaseModule

from ...registry import MODELS


def nearest_neighbours(z, queue, topk=1, exclude=None):
    """For each row of ``z`` (N, D), a row of ``queue`` (Q, D) among its ``topk`` most cosine-
    similar ones (drawn uniformly; ``topk=1``: the nearest). Both are expected L2-normalised.
    ``exclude`` (N, Q) bool marks queue rows a row may not pick (its own earlier projection)."""
    sim = z @ queue.T
    if exclude is not None:
        sim = sim.masked_fill(exclude, -2.)
    if topk == 1:
        return queue[sim.argmax(dim=1)]
    candidates = sim.topk(topk, dim=1).indices
    pick = torch.randint(topk, (len(z), ), device=z.device)
    return queue[candidates[torch.arange(len(z), device=z.device), pick]]


def info_nce(anchors, candidates, temperature):
    """InfoNCE where anchor i's positive is candidate i and the other candidates are its
    negatives; rows are L2-normalised, similarity / temperature are the logits. With more
    candidates than anchors (gathered from every GPU), this rank's anchors are the
    ``rank``-th block."""
    logits = anchors @ candidates.T / temperature
    first = get_rank() * len(anchors) if len(candidates) > len(anchors) else 0
    labels = torch.arange(first, first + len(anchors), device=anchors.device)
    return F.cross_entropy(logits, labels)


def gather_with_grad(x):
    """Rows of every rank, concatenated; the gradient flows back to this rank's rows."""
    if not is_distributed():
        return x
    return torch.cat(torch.distributed.nn.functional.all_gather(x))


@MODELS.register_module()
class NNCLRHead(BaseModule):
    """Predictor + support queue + symmetric nearest-neighbour InfoNCE.

    Args:
        predictor: config of the predictor MLP (e.g. mmpretrain's ``NonLinearNeck``) on the
            projections, or None for none.
        feat_dims: width of the projections (the queue's rows).
        queue_size: number of past projections kept (NNCLR: 98304 for ImageNet).
        temperature: InfoNCE temperature (NNCLR: 0.1, MAE-CT: 0.15).
        topk: the positive is drawn among this many nearest neighbours (MAE-CT's tuning: 20);
            1 is NNCLR's single nearest neighbour.
        exclude_self: never take an image's own earlier projection from the queue as its
            neighbour. Without it, once the queue holds a whole epoch the objective falls back
            to instance discrimination, which does not cluster classes.
    """

    def __init__(self, feat_dims, predictor=None, queue_size=65536, temperature=0.1, topk=1,
                 exclude_self=True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.predictor = MODELS.build(predictor) if predictor else None
        self.temperature = temperature
        self.topk = topk
        self.exclude_self = exclude_self
        # random unit vectors until the queue has been filled once by real projections
        self.register_buffer('queue', F.normalize(torch.randn(queue_size, feat_dims), dim=1))
        self.register_buffer('queue_ids', torch.full((queue_size, ), -1, dtype=torch.long))
        self.register_buffer('queue_ptr', torch.zeros((), dtype=torch.long))

    def predict(self, z):
        if self.predictor is None:
            return z
        return self.predictor([z])[0]

    @torch.no_grad()
    def enqueue(self, z, ids):
        """Write the batch's normalised projections and sample ids (from every rank) over the
        oldest rows."""
        if is_distributed():
            z, ids = torch.cat(all_gather(z)), torch.cat(all_gather(ids))
        n, size = len(z), len(self.queue)
        rows = (self.queue_ptr + torch.arange(n, device=z.device)) % size
        self.queue[rows] = z
        self.queue_ids[rows] = ids
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    @torch.no_grad()
    def neighbours(self, z, ids):
        exclude = None
        if self.exclude_self and ids is not None:
            exclude = ids[:, None] == self.queue_ids[None, :]
        return nearest_neighbours(z, self.queue, self.topk, exclude)

    def loss(self, z1, z2, ids=None, targets=None):
        """z1, z2: projections of two views of the same images, (N, feat_dims); ids: (N, )
        dataset indices of the images (for ``exclude_self``); targets: the two views'
        projections by a momentum (EMA) projector, used instead of z1, z2 to look up and fill
        the queue (MAE-CT's tuning stage)."""
        p1 = gather_with_grad(F.normalize(self.predict(z1), dim=1))
        p2 = gather_with_grad(F.normalize(self.predict(z2), dim=1))
        t1, t2 = (F.normalize(t.detach(), dim=1) for t in (targets or (z1, z2)))
        nn1, nn2 = self.neighbours(t1, ids), self.neighbours(t2, ids)
        loss = (info_nce(nn1, p2, self.temperature) + info_nce(nn2, p1, self.temperature)) / 2
        if ids is None:  # unknown samples: ids that match nothing
            ids = torch.full((len(t1), ), -1, dtype=torch.long, device=t1.device)
        self.enqueue(t1, ids)
        return loss
