"""Absolute position tables of the ViT: the fixed 2-D sin-cos table in MAE's and CAE's orders,
and resampling a table to another grid (timm ``resample_abs_pos_embed``)."""
import math

import torch
import torch.nn.functional as F

SINCOS_ORDERS = ('mae', 'cae')


def sincos_pos_embed_2d(grid_hw, embed_dims, temperature=10000., order='mae'):
    """Fixed 2-D sin-cos position embedding, shape (h*w, embed_dims), row-major tokens.

    Half of the channels encode the column, half the row; each half is [sin, cos] of the
    coordinate times geometric frequencies. The methods order the halves differently, and a
    table is only right in its method's order:

    - ``'mae'``: [column, row] (MAE ``util/pos_embed.py`` get_2d_sincos_pos_embed: the first half
      is computed from ``np.meshgrid(grid_w, grid_h)[0]``, the column).
    - ``'cae'``: [row, column] (CAE ``models/modeling_cae_helper.py:233-244``:
      ``torch.meshgrid(grid_w, grid_h)`` in 'ij' indexing makes its "w" grid the row index).
    """
    if order not in SINCOS_ORDERS:
        raise ValueError(f'sincos order must be one of {SINCOS_ORDERS}, got {order!r}')
    h, w = grid_hw
    assert embed_dims % 4 == 0, 'sin-cos position embedding needs embed_dims % 4 == 0'
    quarter = embed_dims // 4
    omega = 1. / temperature**(torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing='ij')
    first, second = (xs, ys) if order == 'mae' else (ys, xs)
    out_1 = first.reshape(-1, 1) * omega
    out_2 = second.reshape(-1, 1) * omega
    emb = torch.cat([out_1.sin(), out_1.cos(), out_2.sin(), out_2.cos()], dim=1)
    return emb.float()


def resample_abs_pos_embed(pos_embed, new_hw, old_hw=None, num_prefix_tokens=1):
    """Bicubic resampling of a learned (1, prefix + h*w, C) position embedding to a new grid."""
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    if old_hw is None:
        side = int(math.sqrt(grid.shape[1]))
        assert side * side == grid.shape[1], 'pass old_hw for a non-square position embedding'
        old_hw = (side, side)
    if tuple(old_hw) == tuple(new_hw):
        return pos_embed
    c = grid.shape[-1]
    grid = grid.reshape(1, *old_hw, c).permute(0, 3, 1, 2)
    if grid.dtype in (torch.float16, torch.bfloat16):  # bicubic in fp32 (half tables, AMP)
        grid = grid.float()
    grid = F.interpolate(grid, size=tuple(new_hw), mode='bicubic', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, c).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)
