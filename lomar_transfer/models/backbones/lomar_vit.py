"""The LoMaR pretraining view of our ViT: random local windows, masked inside each window."""
import torch
import torch.nn.functional as F
from mmengine.utils import to_2tuple
from torch import nn

from ...registry import MODELS
from ..patches import gather_patches
from .vision_transformer import VisionTransformer, check_mask_flag


WINDOW_SAMPLINGS = ('per_image', 'official')


@MODELS.register_module()
class LoMaRViT(VisionTransformer):
    """:class:`VisionTransformer` that, with ``mask=True``, encodes LoMaR's local windows.

    ``num_windows`` windows of ``window_patches`` x ``window_patches`` patches per image, fully
    inside the patch grid. Only the patches of those windows are embedded (the image is viewed as
    a patch grid and the window patches are gathered). In each window
    ``int(mask_ratio * K * K)`` patches (official ``models_lomar.py:186``) are replaced by a
    learnable mask token; masked and visible tokens, plus a class token, form one independent
    sequence per window, encoded with the relative position encoding (grid K x K).

    ``window_sampling``:
        ``'per_image'`` (default): every image gets its own random window positions.
        ``'official'``: the official sampler (``models_lomar.py:228-245``), to reproduce the
        published numbers exactly: one set of positions per batch (``randperm`` of the rows and of
        the columns, so no two windows share a row or a column offset), and sequence ``s`` pairs
        image ``s % B`` with window ``s % num_windows`` (the repeat/expand order of
        ``generate_window_patches``). With B a multiple of ``num_windows`` each image then sees
        one window position, ``num_windows`` times with different masks: the known bug that the
        per-image sampler fixes.

    With ``mask=None`` it is the plain ViT (same weights, same keys), as used for transfer.

    Returns (with ``mask=True``):
        latent: (B * num_windows, 1 + K*K, C) normalised encoder output.
        mask: (B * num_windows, K*K), 1 for masked patches.
        patch_ids: (B * num_windows, K*K) ids of the window patches in the batch's patch grids
            (``image * h * w + row * w + col``), see :func:`gather_patches`.
    """

    def __init__(self, window_patches=7, num_windows=4, mask_ratio=0.8, rel_pos=True,
                 pos_embed=None, with_cls_token=True, window_sampling='per_image',
                 linear_init='xavier_uniform', img_size=224, **kwargs):
        # xavier-uniform Linear layers as the official model (models_lomar.py:86-93)
        super().__init__(rel_pos=rel_pos, pos_embed=pos_embed, with_cls_token=with_cls_token,
                         linear_init=linear_init, out_type='raw', img_size=img_size, **kwargs)
        if window_sampling not in WINDOW_SAMPLINGS:
            raise ValueError(f'window_sampling must be one of {WINDOW_SAMPLINGS}, got '
                             f'{window_sampling!r}')
        self.window_sampling = window_sampling
        self.window_patches = window_patches
        self.num_windows = num_windows
        self.num_masked = int(window_patches * window_patches * mask_ratio)
        if not 0 < self.num_masked < window_patches**2:
            raise ValueError(f'mask_ratio={mask_ratio} masks {self.num_masked} of '
                             f'{window_patches**2} patches; it must mask some but not all')
        # the grid the windows are drawn from (whole patches only, as forward gathers them)
        h, w = (s // p for s, p in zip(to_2tuple(img_size), self.patch_embed.patch_size))
        if h < window_patches or w < window_patches:
            raise ValueError(
                f'window_patches={window_patches}: a {window_patches}x{window_patches}-patch '
                f'window does not fit the {h}x{w} patch grid of img_size={img_size} with '
                f'patch_size={self.patch_size}; use img_size >= '
                f'{window_patches * max(self.patch_embed.patch_size)} or window_patches <= '
                f'{min(h, w)}')
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def sample_windows(self, batch, grid_hw, device):
        """(B * num_windows, K*K) batch-grid ids of the window patches (see the class doc)."""
        h, w = grid_hw
        k, n = self.window_patches, self.num_windows
        if h < k or w < k:  # inputs of another size than img_size (built-for grid: checked)
            raise ValueError(f'a {h}x{w} patch grid cannot hold {k}x{k} windows: use larger '
                             'images or a smaller window_patches')
        if self.window_sampling == 'per_image':
            rows = torch.randint(0, h - k + 1, (batch * n, 1, 1), device=device)
            cols = torch.randint(0, w - k + 1, (batch * n, 1, 1), device=device)
            image = torch.arange(batch, device=device).repeat_interleave(n)
        else:
            if min(h, w) - k + 1 < n:
                raise ValueError(f"window_sampling='official' draws {n} distinct row and column "
                                 f'offsets, but a {h}x{w} grid has only {h - k + 1}x{w - k + 1} '
                                 f'for {k}x{k} windows')
            tops = torch.randperm(h - k + 1, device=device)[:n]
            lefts = torch.randperm(w - k + 1, device=device)[:n]
            seq = torch.arange(batch * n, device=device)
            rows, cols = tops[seq % n].view(-1, 1, 1), lefts[seq % n].view(-1, 1, 1)
            image = seq % batch
        offs = torch.arange(k, device=device)
        ids = (rows + offs.view(1, k, 1)) * w + cols + offs.view(1, 1, k)
        return image[:, None] * (h * w) + ids.flatten(1)

    def random_masking(self, num_sequences, device):
        """(N, K*K) with exactly ``num_masked`` ones per row at random positions."""
        noise = torch.rand(num_sequences, self.window_patches**2, device=device)
        masked = noise.argsort(dim=1)[:, :self.num_masked]
        return torch.zeros_like(noise).scatter_(1, masked, 1.)

    def forward(self, x, mask=True):
        if mask is None:
            return super().forward(x)
        check_mask_flag(mask, 'LoMaR')
        b, _, hh, ww = x.shape
        p, k = self.patch_size, self.window_patches
        grid_hw = (hh // p, ww // p)
        patch_ids = self.sample_windows(b, grid_hw, x.device)
        patches = gather_patches(x, patch_ids, p, channels_last=False)
        proj = self.patch_embed.proj
        tokens = F.linear(patches, proj.weight.flatten(1), proj.bias)
        pos = self.abs_pos_embed(grid_hw)
        if pos is not None:  # optional (LoMaR has none): the window patches' absolute positions
            pos = pos[0, self.num_prefix_tokens:][patch_ids % (grid_hw[0] * grid_hw[1])]
            tokens = tokens + pos
        mask = self.random_masking(tokens.shape[0], x.device)
        tokens = torch.where(mask.bool()[..., None], self.mask_token.to(tokens.dtype), tokens)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.encode(tokens, (k, k)), mask, patch_ids
