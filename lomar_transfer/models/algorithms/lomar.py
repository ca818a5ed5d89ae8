"""LoMaR (Local Masked Reconstruction, arXiv 2206.00790) as an mmpretrain algorithm."""
from mmpretrain.models.selfsup import BaseSelfSupervisor

from ...registry import MODELS


@MODELS.register_module()
class LoMaR(BaseSelfSupervisor):
    """backbone (:class:`LoMaRViT`: windows, masking, encoder) -> head (:class:`LoMaRHead`:
    pixel predictor + masked normalised-pixel MSE). No decoder."""

    def extract_feat(self, inputs):
        return self.backbone(inputs, mask=None)

    def loss(self, inputs, data_samples, **kwargs):
        latent, mask, patch_ids = self.backbone(inputs, mask=True)
        pred = self.head(latent)
        return dict(loss=self.head.loss(pred, inputs, mask, patch_ids))
