"""LoMaR's light pixel predictor and its loss."""
from mmpretrain.models.heads import MAEPretrainHead
from torch import nn

from ...registry import MODELS
from ..patches import gather_patches, normalise_patch_pixels


@MODELS.register_module()
class LoMaRHead(MAEPretrainHead):
    """Linear (or one-hidden-layer MLP) prediction of each window patch's pixels, and the
    normalised-pixel reconstruction loss on masked patches only (mmpretrain's
    ``PixelReconstructionLoss`` through ``MAEPretrainHead``'s target construction).

    Args:
        in_channels: encoder width.
        hidden_dims: None for a linear predictor, else the MLP's hidden width.
        num_prefix_tokens: tokens before the patches in the encoder output (class token).
        loss, norm_pix, patch_size: as in ``MAEPretrainHead``.
    """

    def __init__(self, in_channels, loss, hidden_dims=None, num_prefix_tokens=1, norm_pix=True,
                 patch_size=16, img_channels=3):
        super().__init__(loss=loss, norm_pix=norm_pix, patch_size=patch_size,
                         in_channels=img_channels)
        out = patch_size**2 * img_channels
        self.num_prefix_tokens = num_prefix_tokens
        self.predictor = nn.Linear(in_channels, out) if hidden_dims is None else nn.Sequential(
            nn.Linear(in_channels, hidden_dims), nn.GELU(), nn.Linear(hidden_dims, out))

    def init_weights(self):
        super().init_weights()
        # official encoder_pred: xavier-uniform weight, zero bias (models_lomar.py:86-90)
        for m in self.predictor.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, latent):
        """(N, prefix + K*K, C) -> (N, K*K, p*p*3) pixel predictions."""
        return self.predictor(latent[:, self.num_prefix_tokens:])

    def window_targets(self, img, patch_ids):
        """Pixels of the window patches only, (B*W, K*K, p*p*3) in MAE's patchify order, each
        normalised over its pixels with ``norm_pix`` (as ``construct_target`` does for all
        patches): the rest of the image is never copied."""
        target = gather_patches(img, patch_ids, self.patch_size, channels_last=True)
        return normalise_patch_pixels(target) if self.norm_pix else target

    def loss(self, pred, img, mask, patch_ids):
        """pred: (B*W, K*K, D); img: (B, 3, H, W); mask: (B*W, K*K); patch_ids: (B*W, K*K)
        batch-grid ids (:func:`gather_patches`)."""
        target = self.window_targets(img, patch_ids)
        return self.loss_module(pred, target.view_as(pred), mask)
