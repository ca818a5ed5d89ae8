"""MAE-CT (contrastive tuning, arXiv 2304.10520) as an mmpretrain algorithm."""
from mmpretrain.models.selfsup import BaseSelfSupervisor

from ...registry import MODELS


@MODELS.register_module()
class MAECT(BaseSelfSupervisor):
    """backbone (a pretrained :class:`VisionTransformer` of any method, lower blocks frozen
    through ``frozen_stages``, pooled output) -> neck (projector MLP) -> head
    (:class:`NNCLRHead`: predictor, nearest-neighbour support queue, InfoNCE).

    Takes two augmented views per image (mmpretrain's ``MultiView`` transform). No labels.
    """

    def extract_feat(self, inputs):
        return self.backbone(inputs)

    def project(self, view):
        return self.neck(self.backbone(view))[0]

    def loss(self, inputs, data_samples, **kwargs):
        z1, z2 = self.project(inputs[0]), self.project(inputs[1])
        return dict(loss=self.head.loss(z1, z2))
