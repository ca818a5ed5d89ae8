"""Per-patch normalised RGB pixels as a reconstruction target (CAE's offline variant)."""
import torch
from torch import nn

from ...registry import MODELS


@MODELS.register_module()
class PixelTarget(nn.Module):
    """(B, 3, H, W) images -> (B, h*w, p*p*3) patch pixels, normalised per patch (MAE's
    norm_pix) when ``norm_pix``. Row-major patches, (py, px, channel) order inside a patch."""

    def __init__(self, patch_size=16, norm_pix=True):
        super().__init__()
        self.patch_size = patch_size
        self.norm_pix = norm_pix

    @torch.no_grad()
    def forward(self, img):
        b, c, h, w = img.shape
        p = self.patch_size
        x = img.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        x = x.reshape(b, (h // p) * (w // p), p * p * c)
        if self.norm_pix:
            x = (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) + 1e-6)**.5
        return x
