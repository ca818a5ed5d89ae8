"""Re-creations of the official LoMaR, MAE and CAE computations, for equivalence tests.

Written from reading the official code (cited per function), not copied, with the official
parameter names so that their ``state_dict()`` is a checkpoint in the official release format.
Deliberately plain (explicit softmax attention, explicit loops over the official index
arithmetic) and independent of ``lomar_transfer``.

- LoMaR: github junchen14/LoMaR ``irpe.py``, ``vision_transformer_irpe.py``, ``models_lomar.py``,
  ``models_vit_rp.py``.
- MAE: github facebookresearch/mae ``models_mae.py``, ``models_vit.py``, ``util/pos_embed.py``.
- CAE: github lxtGH/CAE ``models/modeling_cae_helper.py``, ``models/modeling_finetune.py``.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- position tables
def mae_sincos_table(grid, dims):
    """util/pos_embed.py get_2d_sincos_pos_embed (numpy, cls slot of zeros), (1, 1 + g*g, C)."""
    def one_d(d, pos):
        omega = 1. / 10000**(np.arange(d // 2, dtype=np.float64) / (d / 2.))
        out = np.einsum('m,d->md', pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    g = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    emb = np.concatenate([one_d(dims // 2, g[0]), one_d(dims // 2, g[1])], axis=1)
    emb = np.concatenate([np.zeros([1, dims]), emb], axis=0)
    return torch.from_numpy(emb).float()[None]


def cae_sincos_table(grid, dims):
    """modeling_cae_helper.py:233-252 build_2d_sincos_position_embedding, (1, 1 + g*g, C)."""
    grid_w, grid_h = torch.meshgrid(torch.arange(grid, dtype=torch.float32),
                                    torch.arange(grid, dtype=torch.float32), indexing='ij')
    omega = 1. / 10000**(torch.arange(dims // 4, dtype=torch.float32) / (dims // 4))
    out_w = torch.einsum('m,d->md', grid_w.flatten(), omega)
    out_h = torch.einsum('m,d->md', grid_h.flatten(), omega)
    emb = torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)
    return torch.cat([torch.zeros(1, dims), emb])[None]


# ----------------------------------------------------------------------------- iRPE (LoMaR)
def irpe_bucket_ids(height, width, skip, ratio=1.9):
    """irpe.py get_bucket_ids_2d, product method: (skip + L, skip + L) ids and bucket count."""
    alpha, beta, gamma = ratio, 2 * ratio, 8 * ratio

    def piecewise(rel):  # irpe.py:20-52
        rel = rel.float()
        out = rel.round()
        far = rel.abs() > alpha
        val = alpha + torch.log(rel[far].abs() / alpha) / math.log(gamma / alpha) * (beta - alpha)
        out[far] = torch.sign(rel[far]) * val.round().clip(max=beta)
        return out.long()
    rows = torch.arange(height).view(height, 1).repeat(1, width)
    cols = torch.arange(width).view(1, width).repeat(height, 1)
    pos = torch.stack([rows, cols], 2).view(-1, 1, 2)
    diff = pos - pos.view(1, -1, 2)
    beta_int = int(beta)
    side = 2 * beta_int + 1
    ids = (piecewise(diff[..., 0]) + beta_int) * side + piecewise(diff[..., 1]) + beta_int
    num = side * side
    if skip:
        full = torch.empty(height * width + 1, height * width + 1, dtype=torch.long)
        full[0], full[:, 0], full[1:, 1:] = num, num, ids
        ids = full
    return ids, num + skip


class IRPEKey(nn.Module):
    """irpe.py iRPE, contextual mode on keys, shared head (forward_rpe_transpose, no rpe_ops)."""

    def __init__(self, head_dim, skip=1):
        super().__init__()
        _, self.num_buckets = irpe_bucket_ids(1, 1, skip)
        self.lookup_table_weight = nn.Parameter(torch.zeros(1, head_dim, self.num_buckets))

    def forward(self, x):
        b, heads, length, d = x.shape
        side = int(math.sqrt(length))  # irpe.py: height = width = int(sqrt(L))
        ids, num = irpe_bucket_ids(side, side, length - side * side)
        assert num == self.num_buckets
        table = torch.matmul(x.transpose(0, 1).reshape(-1, b * length, d),
                             self.lookup_table_weight).view(-1, b, length, num).transpose(0, 1)
        offset = torch.arange(0, length * num, num).view(-1, 1)
        flat = (ids + offset).flatten()
        return table.flatten(2)[:, :, flat].view(b, -1, length, length)


class Mlp(nn.Module):

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class LoMaRAttention(nn.Module):
    """vision_transformer_irpe.py:112-156 with rpe on k only."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads)**-0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)
        self.rpe_k = IRPEKey(dim // heads)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn + self.rpe_k(q)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


def beit_relative_position_index(grid):
    """BEiT's RelativePositionBias index (unilm beit/modeling_finetune.py, CAE's copy
    modeling_finetune.py:83-97): patch pairs by offset, then cls-to-token, token-to-cls, cls-cls."""
    num = (2 * grid - 1)**2 + 3
    coords = torch.stack(torch.meshgrid(torch.arange(grid), torch.arange(grid),
                                        indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel[:, :, 0] += grid - 1
    rel[:, :, 1] += grid - 1
    rel[:, :, 0] *= 2 * grid - 1
    index = torch.zeros(grid * grid + 1, grid * grid + 1, dtype=torch.long)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = num - 3
    index[0:, 0] = num - 2
    index[0, 0] = num - 1
    return index


class CAEAttention(nn.Module):
    """modeling_cae_helper.py:15-60 (q/v biases), plus the per-block relative position bias of
    modeling_finetune.py:75-128 when ``grid`` is given."""

    def __init__(self, dim, heads, grid=None):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads)**-0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3, bias=False), nn.Linear(dim, dim)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.zeros(dim))
        self.grid = grid
        if grid is not None:
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * grid - 1)**2 + 3, heads))
            self.register_buffer('relative_position_index', beit_relative_position_index(grid))

    def forward(self, x):
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.grid is not None:
            rpb = self.relative_position_bias_table[self.relative_position_index.view(-1)]
            attn = attn + rpb.view(n, n, -1).permute(2, 0, 1)[None]
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    """timm pre-norm block; ``gamma_1/2`` layer scales for CAE (modeling_cae_helper.py:126-155)."""

    def __init__(self, dim, heads, attn, init_values=0.):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = attn, Mlp(dim, 4 * dim)
        if init_values:
            self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
            self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x):
        if self.gamma_1 is None:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):

    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class OfficialViT(nn.Module):
    """The encoders and fine-tune models of the three methods, one class:

    - ``'lomar'``: vision_transformer_irpe.py VisionTransformer (no absolute position, iRPE in
      every block) and models_lomar.py MaskedAutoencoderViT (``encoder_pred``, ``mask_token``).
    - ``'mae'``: models_mae.py encoder / models_vit.py fine-tune model (``pos_embed`` added).
    - ``'cae'``: modeling_cae_helper.py VisionTransformerEncoder / modeling_finetune.py
      (q/v bias, layer scale, sin-cos ``pos_embed``, ``rel_pos_bias`` in fine-tuning).
    ``global_pool`` builds the fine-tune model: mean of patch tokens -> ``fc_norm``, no ``norm``.
    """

    def __init__(self, method, dim=64, depth=2, heads=4, patch=16, img=112, global_pool=False,
                 rel_pos_bias=False):
        super().__init__()
        self.method, self.patch, self.global_pool = method, patch, global_pool
        grid = img // patch
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        table = cae_sincos_table(grid, dim) if method == 'cae' else mae_sincos_table(grid, dim)
        self.pos_embed = nn.Parameter(table, requires_grad=False)

        def attn():
            if method == 'lomar':
                return LoMaRAttention(dim, heads)
            if method == 'cae':
                return CAEAttention(dim, heads, grid if rel_pos_bias else None)
            return MAEAttention(dim, heads)
        self.blocks = nn.ModuleList(
            Block(dim, heads, attn(), 0.1 if method == 'cae' else 0.) for _ in range(depth))
        if global_pool:
            self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        else:
            self.norm = nn.LayerNorm(dim, eps=1e-6)
        if method == 'lomar' and not global_pool:
            self.encoder_pred = nn.Linear(dim, patch * patch * 3)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))

    def tokens(self, x):
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        if self.method != 'lomar':  # LoMaR's encoders add no absolute position
            x = x + self.pos_embed
        return x

    def forward_features(self, x):
        """All tokens, no masking: (B, 1 + L, C) after the final norm, or the pooled feature."""
        x = self.tokens(x)
        for blk in self.blocks:
            x = blk(x)
        if self.global_pool:
            return self.fc_norm(x[:, 1:].mean(dim=1))
        return self.norm(x)

    # --- MAE pretraining encoder: models_mae.py:120-170
    def mae_encoder(self, x, mask_ratio):
        x = self.patch_embed(x) + self.pos_embed[:, 1:]
        n, length, d = x.shape
        keep = int(length * (1 - mask_ratio))
        noise = torch.rand(n, length)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).repeat(1, 1, d))
        mask = torch.ones(n, length)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        cls = self.cls_token + self.pos_embed[:, :1]
        x = torch.cat([cls.expand(n, -1, -1), x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    # --- CAE pretraining encoder: modeling_cae_helper.py:282-305
    def cae_encoder(self, x, bool_masked_pos):
        x = self.patch_embed(x)
        b, _, d = x.shape
        x = torch.cat([self.cls_token.expand(b, -1, -1), x[~bool_masked_pos].reshape(b, -1, d)],
                      dim=1)
        pos = self.pos_embed.expand(b, -1, -1)
        pos = torch.cat([pos[:, :1], pos[:, 1:][~bool_masked_pos].reshape(b, -1, d)], dim=1)
        x = x + pos
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    # --- LoMaR pretraining: models_lomar.py:150-290, windows and masks given
    def lomar_pretrain(self, imgs, tops, lefts, masked_ids, window=7):
        """``tops``/``lefts``: (num_windows,) window offsets shared by the batch (the official
        sampler's draw); ``masked_ids``: (N, num_windows, masked) grid ids of the masked patches
        (the official ``sample_patch_index`` draw). Returns (loss, pred, mask_indices)."""
        x = self.patch_embed(imgs)  # official: .float(); here the input's dtype (float64 tests)
        n, _, d = x.shape
        h = w = imgs.shape[-1] // self.patch
        nw = tops.shape[0]
        rows = torch.arange(window).unsqueeze(0).expand(nw, window) + lefts.unsqueeze(-1)
        cols = torch.arange(0, window * w, w).unsqueeze(0).expand(nw, window) + \
            tops.unsqueeze(-1) * w
        in_window = (rows.unsqueeze(1).expand(nw, window, window)
                     + cols.unsqueeze(-1).expand(nw, window, window)).view(nw, -1)
        keep = in_window.unsqueeze(0).expand(n, nw, window * window)
        xr = x.unsqueeze(0).repeat(nw, 1, 1, 1).view(n * nw, h * w, d)
        sorted_keep, _ = torch.sort(keep, dim=-1)
        sorted_keep = sorted_keep.reshape(n * nw, -1)
        masked = masked_ids.reshape(n * nw, -1)
        xm = torch.gather(xr, 1, sorted_keep.unsqueeze(-1).repeat(1, 1, d)).clone()
        mask_indices = ((sorted_keep.unsqueeze(-1) - masked.unsqueeze(1)) == 0).sum(-1) == 1
        xm[mask_indices] = self.mask_token
        xm = torch.cat([self.cls_token.expand(xm.shape[0], -1, -1), xm], dim=1)
        for blk in self.blocks:
            xm = blk(xm)
        pred = self.encoder_pred(self.norm(xm))[:, 1:]
        # forward_loss (norm_pix_loss=True)
        p = self.patch
        target = imgs.reshape(n, 3, h, p, w, p)
        target = torch.einsum('nchpwq->nhwpqc', target).reshape(n, h * w, p * p * 3)
        target = target.unsqueeze(0).repeat(nw, 1, 1, 1).view(-1, h * w, p * p * 3)
        target = torch.gather(target, 1, sorted_keep.unsqueeze(-1).repeat(1, 1, p * p * 3))
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1.e-6)**.5
        loss = ((pred - target)**2).mean(-1)
        loss = (loss * mask_indices).sum() / mask_indices.sum()
        return loss, pred, mask_indices


class MAEAttention(nn.Module):
    """timm 0.3.2 Attention (qkv bias), the block of models_mae.py and models_vit.py."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads)**-0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


def perturb_(module, seed=0, scale=0.2):
    """Every trainable parameter (tables, layer scales, biases, tokens) random and non-zero;
    LayerNorm weights around 1. Fixed ``requires_grad=False`` tables (sin-cos) are kept."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.requires_grad:
                noise = torch.randn(p.shape, generator=g) * scale
                p.copy_(noise + 1. if 'norm' in name and name.endswith('weight') else noise)
    return module


# ----------------------------------------------------------------------------- ViTDet (detectron2)
def vitdet_rel_pos(q_size, k_size, table):
    """modeling/backbone/utils.py:63-93 get_rel_pos, with an explicit loop over the pairs."""
    length = int(2 * max(q_size, k_size) - 1)
    if table.shape[0] != length:
        table = F.interpolate(table.reshape(1, table.shape[0], -1).permute(0, 2, 1),
                              size=length, mode='linear').reshape(-1, length).permute(1, 0)
    out = torch.empty(q_size, k_size, table.shape[1], dtype=table.dtype)
    for i in range(q_size):
        for j in range(k_size):
            coord = (i * max(k_size / q_size, 1.) - j * max(q_size / k_size, 1.)
                     + (k_size - 1) * max(q_size / k_size, 1.))
            out[i, j] = table[int(coord)]
    return out


class ViTDetAttention(nn.Module):
    """modeling/backbone/vit.py:26-81: heads folded into the batch, decomposed relative position
    (utils.py:96-125) added to the scaled logits from the unscaled queries."""

    def __init__(self, dim, heads, input_size):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads)**-0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, dim // heads))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, dim // heads))

    def forward(self, x):
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.heads, h * w, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        rh, rw = vitdet_rel_pos(h, h, self.rel_pos_h), vitdet_rel_pos(w, w, self.rel_pos_w)
        r_q = q.reshape(-1, h, w, q.shape[-1])
        rel_h = torch.einsum('bhwc,hkc->bhwk', r_q, rh)
        rel_w = torch.einsum('bhwc,wkc->bhwk', r_q, rw)
        attn = (attn.view(-1, h, w, h, w) + rel_h[:, :, :, :, None]
                + rel_w[:, :, :, None, :]).view(-1, h * w, h * w)
        x = (attn.softmax(dim=-1) @ v).view(b, self.heads, h, w, -1)
        return self.proj(x.permute(0, 2, 3, 1, 4).reshape(b, h, w, -1))


class ViTDetBlock(nn.Module):
    """vit.py:150-229: windowed (zero-padded after norm1, utils.py:16-60) or global attention."""

    def __init__(self, dim, heads, window, input_size):
        super().__init__()
        self.window = window
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = ViTDetAttention(dim, heads, (window, window) if window else input_size)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window:
            h, w, ws = x.shape[1], x.shape[2], self.window
            ph, pw = -h % ws, -w % ws
            x = F.pad(x, (0, 0, 0, pw, 0, ph))
            hp, wp = h + ph, w + pw
            outs = torch.zeros_like(x)
            for i in range(0, hp, ws):  # one window at a time
                for j in range(0, wp, ws):
                    outs[:, i:i + ws, j:j + ws] = self.attn(x[:, i:i + ws, j:j + ws])
            x = outs[:, :h, :w]
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ViTDetBackbone(nn.Module):
    """vit.py:232-360 ViT (use_abs_pos, use_rel_pos, pretrain_use_cls_token): the pretrained
    table (class slot included) resampled bicubic to the input grid in every forward
    (utils.py:128-157), no final norm; returns the last block's map (B, C, h, w)."""

    def __init__(self, dim=64, depth=4, heads=4, patch=16, img=160, pretrain_img=112, window=4,
                 global_blocks=(1, 3)):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, (pretrain_img // patch)**2 + 1, dim))
        size = (img // patch, img // patch)
        self.blocks = nn.ModuleList(
            ViTDetBlock(dim, heads, 0 if i in global_blocks else window, size)
            for i in range(depth))

    def forward(self, x):
        x = self.patch_embed.proj(x).permute(0, 2, 3, 1)
        h, w = x.shape[1:3]
        pos = self.pos_embed[:, 1:]
        side = int(math.sqrt(pos.shape[1]))
        pos = pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        if (side, side) != (h, w):
            pos = F.interpolate(pos, size=(h, w), mode='bicubic', align_corners=False)
        x = x + pos.permute(0, 2, 3, 1)
        for blk in self.blocks:
            x = blk(x)
        return x.permute(0, 3, 1, 2)
