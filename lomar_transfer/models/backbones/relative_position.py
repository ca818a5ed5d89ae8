"""Relative position terms of the attention logits: LoMaR's contextual encoding (iRPE) and
ViTDet's decomposed tables (:func:`get_rel_pos`, :func:`decomposed_rel_pos_bias`, at the end).

LoMaR's learnable relative position encoding (iRPE, contextual mode on keys, product method).

For query token i and key token j at 2-D patch offset (dy, dx), the attention logit
``scale * q_i . k_j`` gets ``q_i . r[bucket(dy, dx)]`` (the *unscaled* query, as the official
``vision_transformer_irpe.py:135-138`` adds ``rpe_k(q)`` after scaling only the product) where
``r`` is a zero-initialised table of ``num_buckets`` vectors of the head dimension, shared by
all heads. Offsets are bucketed per axis by iRPE's piecewise index (exact for |d| <= alpha,
logarithmic beyond, clipped at beta), and the two axes are combined as a product:
(2 * int(beta) + 1) ** 2 buckets. A class token (``skip=1``) gets one extra bucket for
all its pairs. Only offsets enter, so the same table serves a 7x7 window, a 14x14 image or a
64x64 detection feature map. Parameter names follow the official LoMaR/iRPE code
(``rpe_k.lookup_table_weight``) so released checkpoints map one-to-one.
"""
import math
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


def piecewise_index(rel, alpha, beta, gamma):
    """iRPE Eq. 18: identity for |rel| <= alpha, then log-spaced up to +-beta (integer output)."""
    rel_abs = rel.abs()
    far = rel_abs > alpha
    out = rel.round().long()
    scaled = alpha + torch.log(rel_abs[far] / alpha) / math.log(gamma / alpha) * (beta - alpha)
    out[far] = (torch.sign(rel[far]) * scaled.round().clip(max=beta)).long()
    return out


@lru_cache(maxsize=32)
def product_bucket_ids(height, width, skip, alpha, beta, gamma):
    """(skip + h*w, skip + h*w) bucket ids; prefix tokens use the extra id ``num_buckets``."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing='ij')
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=1).float()
    diff = pos[:, None] - pos[None]  # (L, L, 2): query position - key position
    beta_int = int(beta)
    side = 2 * beta_int + 1
    rows = piecewise_index(diff[..., 0], alpha, beta, gamma) + beta_int
    cols = piecewise_index(diff[..., 1], alpha, beta, gamma) + beta_int
    ids = rows * side + cols
    if skip:
        full = ids.new_full((skip + height * width, ) * 2, side * side)
        full[skip:, skip:] = ids
        ids = full
    return ids


class ContextualKeyRPE(nn.Module):
    """Relative position term of the attention logits, computed from the unscaled queries.

    ``_version`` 2: versions 1 (lomar_transfer before the fix) computed the term from the
    queries times ``head_dims ** -0.5``; their tables are rescaled on load, which gives exactly
    the function they were trained as (:meth:`_load_from_state_dict`).

    Args:
        head_dims: dimension of one head.
        ratio: iRPE's ratio; alpha, beta, gamma = ratio * (1, 2, 8). LoMaR uses 1.9.
        num_prefix_tokens: class-token-like tokens before the patch grid (0 or 1).
    """

    def __init__(self, head_dims, ratio=1.9, num_prefix_tokens=1):
        super().__init__()
        self.alpha, self.beta, self.gamma = ratio, 2 * ratio, 8 * ratio
        self.num_prefix_tokens = num_prefix_tokens
        # +1: the class token's bucket, kept even without a class token so that the table of a
        # pretraining ViT (with one) loads into a dense-task ViT (without)
        self.num_buckets = (2 * int(self.beta) + 1)**2 + 1
        # (heads=1: shared, head_dims, buckets), zero-initialised as in the official code
        self.lookup_table_weight = nn.Parameter(torch.zeros(1, head_dims, self.num_buckets))

    _version = 2

    @staticmethod
    def upgrade_table(state_dict, key, version):
        """Rescale the table ``state_dict[key]`` written by format ``version`` < 2 in place: it
        multiplied scaled queries, q*s @ T == q @ (s*T)."""
        if version < 2 and key in state_dict:
            table = state_dict[key]
            state_dict[key] = table * table.shape[1]**-0.5
            from mmengine.logging import print_log
            print_log(f'{key}: table of a lomar_transfer checkpoint format {version} rescaled '
                      'by head_dims**-0.5 to the unscaled-query convention (format 2)',
                      logger='current')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        self.upgrade_table(state_dict, prefix + 'lookup_table_weight',
                           local_metadata.get('version', self._version))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def bucket_ids(self, grid_hw, device):
        ids = product_bucket_ids(grid_hw[0], grid_hw[1], self.num_prefix_tokens, self.alpha,
                                 self.beta, self.gamma)
        return ids.to(device)

    def forward(self, q, grid_hw):
        """q: (B, heads, L, head_dims), not multiplied by the attention scale
        -> (B, heads, L, L)."""
        ids = self.bucket_ids(grid_hw, q.device)
        if ids.shape[0] != q.shape[2]:
            raise ValueError(f'{q.shape[2]} tokens do not match a {grid_hw} grid with '
                             f'{self.num_prefix_tokens} prefix token(s)')
        table = q @ self.lookup_table_weight  # (B, heads, L, buckets)
        return table.gather(-1, ids.expand(*q.shape[:2], -1, -1))


def resize_rel_pos(rel_pos, length):
    """A per-axis table (L, C) resized linearly to ``length`` rows (detectron2
    ``modeling/backbone/utils.py:75-86``)."""
    if rel_pos.shape[0] == length:
        return rel_pos
    return F.interpolate(rel_pos.t()[None], size=length, mode='linear')[0].t()


def resize_beit_table(table, side):
    """A BEiT relative position bias table, (s*s + 3, heads): the terms of the s = 2g - 1 offsets
    per axis of a g x g grid, then the 3 class-token terms, resized to ``side * side + 3`` rows as
    BEiT does for another input size (unilm beit/run_class_finetuning.py:351-411, and its
    segmentation loader): the source offsets are placed on a geometric sequence whose sum reaches
    the new half-width, so offsets near zero keep their values and far ones spread; a bicubic
    spline through them is read at every integer offset; the class-token terms stay. BEiT's
    ``interp2d(kind='cubic')`` on a grid is FITPACK's interpolating spline, which
    ``RectBivariateSpline(s=0)`` computes (interp2d is gone from SciPy >= 1.14)."""
    import numpy as np
    from scipy.interpolate import RectBivariateSpline
    src = int(round((table.shape[0] - 3)**.5))
    if src == side:
        return table
    lo, hi = 1.01, 1.5
    while hi - lo > 1e-6:  # the ratio q whose geometric sum over src // 2 terms is side // 2
        q = (lo + hi) / 2.
        if (1. - q**(src // 2)) / (1. - q) > side // 2:
            hi = q
        else:
            lo = q
    dis, cur = [], 1.
    for i in range(src // 2):
        dis.append(cur)
        cur += q**(i + 1)
    at = [-d for d in reversed(dis)] + [0.] + dis
    t = side // 2.
    new = np.arange(-t, t + 0.1, 1.)
    heads = [RectBivariateSpline(at, at, table[:-3, h].reshape(src, src).float().numpy(),
                                 kx=3, ky=3, s=0)(new, new) for h in range(table.shape[1])]
    grid = torch.from_numpy(np.stack(heads, -1)).reshape(side * side, -1).to(table)
    return torch.cat([grid, table[-3:]])


def get_rel_pos(q_size, k_size, rel_pos):
    """Decomposed relative position, one axis: (q_size, k_size, C) rows of ``rel_pos``.

    ``rel_pos`` (L, C) holds one vector per offset -(size-1)..size-1 of this axis. A table made
    for another size (a window block's table met at a global block's size, or a checkpoint of
    another resolution) is first resized linearly to 2 * max(q_size, k_size) - 1 entries, and
    unequal query/key sizes are compared on the longer one's scale: detectron2
    ``modeling/backbone/utils.py:63-93`` (ViTDet, after MViTv2).
    """
    rel_pos = resize_rel_pos(rel_pos, 2 * max(q_size, k_size) - 1)
    q_scale, k_scale = max(k_size / q_size, 1.), max(q_size / k_size, 1.)
    coords = (torch.arange(q_size, device=rel_pos.device)[:, None] * q_scale -
              torch.arange(k_size, device=rel_pos.device)[None] * k_scale + (k_size - 1) * k_scale)
    return rel_pos[coords.long()]


def decomposed_rel_pos_bias(q, rel_pos_h, rel_pos_w, q_hw, k_hw=None):
    """ViTDet's relative position term as an additive attention mask.

    q: (B, heads, q_h*q_w, C) *unscaled* queries (detectron2 ``vit.py`` adds the term to
    ``(q * scale) @ k^T`` from the raw ``q``); returns (B, heads, q_h*q_w, k_h*k_w) with
    ``bias[(y, x), (y', x')] = q . Rh[y - y'] + q . Rw[x - x']`` (``utils.py:96-125``).
    """
    (qh, qw), (kh, kw) = q_hw, k_hw or q_hw
    r_q = q.reshape(*q.shape[:2], qh, qw, q.shape[-1])
    rel_h = torch.einsum('bnyxc,ykc->bnyxk', r_q, get_rel_pos(qh, kh, rel_pos_h).to(q.dtype))
    rel_w = torch.einsum('bnyxc,xkc->bnyxk', r_q, get_rel_pos(qw, kw, rel_pos_w).to(q.dtype))
    bias = rel_h[..., :, None] + rel_w[..., None, :]  # (B, heads, qh, qw, kh, kw)
    return bias.reshape(*q.shape[:2], qh * qw, kh * kw)
