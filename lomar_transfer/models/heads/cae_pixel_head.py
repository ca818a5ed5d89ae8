"""CAE head for pixel targets: the offline replacement of DALL-E token prediction."""
from mmpretrain.models.heads import CAEHead
from torch import nn

from ...registry import MODELS


@MODELS.register_module()
class CAEPixelLoss(nn.Module):
    """MSE between decoder outputs and the masked patches' pixels, plus ``lambd`` times the MSE
    alignment of regressor predictions with the teacher's masked-patch representations."""

    def __init__(self, lambd=2.):
        super().__init__()
        self.lambd = lambd
        self.mse = nn.MSELoss()

    def forward(self, pred, target, latent_pred, latent_target):
        return self.mse(pred, target), self.mse(latent_pred, latent_target.detach()) * self.lambd


@MODELS.register_module()
class CAEPixelHead(CAEHead):
    """mmpretrain's ``CAEHead`` whose targets are already pixels (from :class:`PixelTarget`)."""

    def __init__(self, loss=dict(type='lomar_transfer.CAEPixelLoss'), **kwargs):
        super().__init__(loss=loss, **kwargs)

    def _generate_target(self, pixels):
        return pixels
