"""Per-patch normalised RGB pixels as a reconstruction target (CAE's offline variant)."""
import torch
from torch import nn

from ...registry import MODELS
from ..patches import all_patch_ids, gather_patches, normalise_patch_pixels


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
        b, _, h, w = img.shape
        ids = all_patch_ids(b, (h // self.patch_size, w // self.patch_size), img.device)
        x = gather_patches(img, ids, self.patch_size, channels_last=True)
        return normalise_patch_pixels(x) if self.norm_pix else x
