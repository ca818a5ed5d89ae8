"""The LoMaR pretraining view of our ViT: random local windows, masked inside each window."""
import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from .vision_transformer import VisionTransformer


def gather_patches(img, patch_ids, patch_size, channels_last):
    """(B, N, C*p*p) pixels of the patches ``patch_ids`` (B, ...) of the h*w patch grid of
    ``img`` (B, C, H, W). The grid is a view of the image (no copy); only the chosen patches
    are copied. Pixel order: (C, p, p) as a patch-embedding weight flattens, or (p, p, C) with
    ``channels_last`` as MAE's patchify."""
    b, c, hh, ww = img.shape
    h, w = hh // patch_size, ww // patch_size
    grid = img[:, :, :h * patch_size, :w * patch_size].reshape(b, c, h, patch_size, w,
                                                                patch_size)
    grid = grid.permute(0, 2, 4, 3, 5, 1) if channels_last else grid.permute(0, 2, 4, 1, 3, 5)
    return grid.flatten(1, 2)[torch.arange(b, device=img.device)[:, None],
                              patch_ids.flatten(1)].flatten(2)


@MODELS.register_module()
class LoMaRViT(VisionTransformer):
    """:class:`VisionTransformer` that, with ``mask=True``, encodes LoMaR's local windows.

    Every image gets ``num_windows`` windows of ``window_patches`` x ``window_patches`` patches at
    random positions (per image, fully inside the patch grid). Only the patches of those windows
    are embedded: the image is viewed as a patch grid and the window patches are gathered, so no
    full-image patch embedding is computed. In each window ``round(mask_ratio * K * K)`` patches
    are replaced by a learnable mask token; masked and visible tokens, plus a class token, form one
    independent sequence per window, encoded with the relative position encoding (grid K x K).

    With ``mask=False``/None it is the plain ViT (same weights, same keys), as used for transfer.

    Returns (with ``mask=True``):
        latent: (B * num_windows, 1 + K*K, C) normalised encoder output.
        mask: (B * num_windows, K*K), 1 for masked patches.
        patch_ids: (B, num_windows, K*K) indices of the window patches in the h*w grid.
    """

    def __init__(self, window_patches=7, num_windows=4, mask_ratio=0.8, rel_pos=True,
                 pos_embed=None, with_cls_token=True, **kwargs):
        super().__init__(rel_pos=rel_pos, pos_embed=pos_embed, with_cls_token=with_cls_token,
                         out_type='raw', **kwargs)
        self.window_patches = window_patches
        self.num_windows = num_windows
        self.num_masked = int(round(mask_ratio * window_patches**2))
        if not 0 < self.num_masked < window_patches**2:
            raise ValueError(f'mask_ratio={mask_ratio} masks {self.num_masked} of '
                             f'{window_patches**2} patches; it must mask some but not all')
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def init_weights(self):
        super().init_weights()
        nn.init.normal_(self.mask_token, std=.02)

    def sample_windows(self, batch, grid_hw, device):
        """(B, num_windows, K*K) patch indices of random windows, independent per image."""
        h, w = grid_hw
        k = self.window_patches
        if h < k or w < k:
            raise ValueError(f'a {h}x{w} patch grid cannot hold {k}x{k} windows: use larger '
                             'images or a smaller window_patches')
        rows = torch.randint(0, h - k + 1, (batch, self.num_windows, 1, 1), device=device)
        cols = torch.randint(0, w - k + 1, (batch, self.num_windows, 1, 1), device=device)
        offs = torch.arange(k, device=device)
        ids = (rows + offs.view(1, 1, k, 1)) * w + cols + offs.view(1, 1, 1, k)
        return ids.flatten(2)

    def random_masking(self, num_sequences, device):
        """(N, K*K) with exactly ``num_masked`` ones per row at random positions."""
        noise = torch.rand(num_sequences, self.window_patches**2, device=device)
        masked = noise.argsort(dim=1)[:, :self.num_masked]
        return torch.zeros_like(noise).scatter_(1, masked, 1.)

    def forward(self, x, mask=True):
        if not mask:
            return super().forward(x)
        b, _, hh, ww = x.shape
        p, k = self.patch_size, self.window_patches
        grid_hw = (hh // p, ww // p)
        patch_ids = self.sample_windows(b, grid_hw, x.device)
        patches = gather_patches(x, patch_ids, p, channels_last=False)
        proj = self.patch_embed.proj
        tokens = F.linear(patches, proj.weight.flatten(1), proj.bias)
        tokens = tokens.view(b * self.num_windows, k * k, self.embed_dims)
        pos = self.abs_pos_embed(grid_hw)
        if pos is not None:  # optional (LoMaR has none): the window patches' absolute positions
            pos = pos[0, self.num_prefix_tokens:][patch_ids.flatten(1)]
            tokens = tokens + pos.view_as(tokens)
        mask = self.random_masking(tokens.shape[0], x.device)
        tokens = torch.where(mask.bool()[..., None], self.mask_token.to(tokens.dtype), tokens)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.encode(tokens, (k, k)), mask, patch_ids
