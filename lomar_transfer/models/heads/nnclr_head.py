"""NNCLR's head (Dwibedi et al., ICCV 2021), the objective of MAE-CT (arXiv 2304.10520): the
positive of a view is the nearest neighbour of its projection in a FIFO support queue of past
projections, contrasted with the prediction of the other view by InfoNCE."""
import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, is_distributed
from mmengine.model import BaseModule

from ...registry import MODELS


def nearest_neighbours(z, queue):
    """For each row of ``z`` (N, D), the row of ``queue`` (Q, D) with the highest cosine
    similarity; both are expected L2-normalised."""
    return queue[(z @ queue.T).argmax(dim=1)]


def info_nce(anchors, candidates, temperature):
    """InfoNCE where anchor i's positive is candidate i and the other candidates of the batch
    are its negatives; rows are L2-normalised, similarity / temperature are the logits."""
    logits = anchors @ candidates.T / temperature
    return F.cross_entropy(logits, torch.arange(len(anchors), device=anchors.device))


@MODELS.register_module()
class NNCLRHead(BaseModule):
    """Predictor + support queue + symmetric nearest-neighbour InfoNCE.

    Args:
        predictor: config of the predictor MLP (e.g. mmpretrain's ``NonLinearNeck``) on the
            projections, or None for none.
        feat_dims: width of the projections (the queue's rows).
        queue_size: number of past projections kept (NNCLR: 98304 for ImageNet).
        temperature: InfoNCE temperature (NNCLR: 0.1).
    """

    def __init__(self, feat_dims, predictor=None, queue_size=65536, temperature=0.1,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.predictor = MODELS.build(predictor) if predictor else None
        self.temperature = temperature
        # random unit vectors until the queue has been filled once by real projections
        self.register_buffer('queue', F.normalize(torch.randn(queue_size, feat_dims), dim=1))
        self.register_buffer('queue_ptr', torch.zeros((), dtype=torch.long))

    def predict(self, z):
        if self.predictor is None:
            return z
        return self.predictor([z])[0]

    @torch.no_grad()
    def enqueue(self, z):
        """Write the batch's normalised projections (from every rank) over the oldest rows."""
        if is_distributed():
            z = torch.cat(all_gather(z))
        n, size = len(z), len(self.queue)
        ids = (self.queue_ptr + torch.arange(n, device=z.device)) % size
        self.queue[ids] = z
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def loss(self, z1, z2):
        """z1, z2: projections of two views of the same images, (N, feat_dims)."""
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        p1, p2 = F.normalize(self.predict(z1), dim=1), F.normalize(self.predict(z2), dim=1)
        nn1 = nearest_neighbours(z1.detach(), self.queue)
        nn2 = nearest_neighbours(z2.detach(), self.queue)
        loss = (info_nce(nn1, p2, self.temperature) + info_nce(nn2, p1, self.temperature)) / 2
        self.enqueue(z1.detach())
        return loss
