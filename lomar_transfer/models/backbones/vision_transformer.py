"""One Vision Transformer for pretraining and every transfer task.

Shapes: images (B, 3, H, W) -> patch tokens (B, h*w, C) with h = ceil(H / patch_size), w likewise
(or the convolution's output size with an explicit ``patch_cfg=dict(padding=...)``). Any input
size works, square or not: the fixed sin-cos embedding is computed for the actual grid, a learned
one is resampled to it.
"""
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmengine.utils import to_2tuple

from ...registry import MODELS
from .pos_embed import SINCOS_ORDERS, resample_abs_pos_embed, sincos_pos_embed_2d
from .pretrained import load_pretrained_backbone
from .relative_position import ContextualKeyRPE, decomposed_rel_pos_bias
from .weights import adapt_state_dict, report_notes

def check_mask_flag(mask, method):
    """The pretraining views take ``mask=None`` for "no masking" (mmpretrain's value: its
    ``MAE.extract_feat`` passes None; ``MAEViT``'s ``mask is None or False`` is only ever None)
    and ``True`` to draw their own masks; CAE's takes the mask tensor itself."""
    if mask is not True:
        raise ValueError(f'{method} pretraining view: mask={mask!r}; pass mask=True to mask, or '
                         'mask=None for the plain ViT')


# name -> (embed_dims, depth, num_heads, mlp hidden dims)
ARCH_SETTINGS = {
    'tiny': (192, 12, 3, 768),
    'small': (384, 12, 6, 1536),
    'base': (768, 12, 12, 3072),
    'large': (1024, 24, 16, 4096),
    'huge': (1280, 32, 16, 5120),
}


class PatchEmbed(nn.Module):
    """Patches -> tokens via a strided convolution; returns (tokens, (h, w)).

    ``patch_size`` and ``padding`` are an int or (h, w). ``padding='corner'`` zero-pads
    bottom/right up to a multiple of the patch size; an int is the convolution's own padding on
    every side (ViTPose: 2). Both as mmcv's ``PatchEmbed``, which mmpretrain's ViT uses.
    """

    def __init__(self, patch_size=16, in_channels=3, embed_dims=768, padding='corner'):
        super().__init__()
        if isinstance(padding, str) and padding != 'corner':
            raise ValueError(f"padding must be 'corner', an int or (h, w), got {padding!r}")
        self.patch_size = tuple(to_2tuple(patch_size))
        self.padding = padding if padding == 'corner' else tuple(to_2tuple(padding))
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=self.patch_size,
                              stride=self.patch_size,
                              padding=0 if padding == 'corner' else self.padding)

    def grid_size(self, img_hw):
        """Token grid of an image of size (H, W) (mmcv PatchEmbed.init_out_size)."""
        if self.padding == 'corner':
            return tuple(-(-s // p) for s, p in zip(img_hw, self.patch_size))
        return tuple((s + 2 * q - p) // p + 1
                     for s, p, q in zip(img_hw, self.patch_size, self.padding))

    def forward(self, x):
        # Dense tasks feed arbitrary sizes (e.g. whole-image segmentation inference): pad
        # bottom/right to a multiple of the patch size, as mmcv's AdaptivePadding('corner') does.
        if self.padding == 'corner':
            h, w = x.shape[-2:]
            pad_h, pad_w = -h % self.patch_size[0], -w % self.patch_size[1]
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        grid_hw = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), tuple(grid_hw)


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention`` (see :func:`attention`).

    ``qkv_bias``: True (timm/MAE: one bias for q, k and v), False, or 'qv' (BEiT/CAE: learnable q
    and v biases, k has none). Relative position terms, each passed to SDPA as an additive mask:
    ``rel_pos``, a :class:`ContextualKeyRPE` (LoMaR); ``rel_pos_bias_grid``, BEiT's per-block
    bias table over a fixed grid (mmseg MAE/BEiT, CAE); ``decomposed_grid``, ViTDet's
    decomposed per-axis tables sized for this grid (resized when met at another size).
    """

    def __init__(self, embed_dims, num_heads, qkv_bias=True, attn_drop=0., proj_drop=0.,
                 rel_pos=None, rel_pos_bias_grid=None, num_prefix_tokens=1,
                 decomposed_grid=None):
        super().__init__()
        assert embed_dims % num_heads == 0, 'embed_dims must be divisible by num_heads'
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias is True)
        if qkv_bias == 'qv':
            self.q_bias = nn.Parameter(torch.zeros(embed_dims))
            self.v_bias = nn.Parameter(torch.zeros(embed_dims))
        else:
            self.q_bias = self.v_bias = None
        self.rpe_k = rel_pos
        # BEiT/CAE per-block relative position bias (CAE fine-tuning): one learned bias per head
        # and 2-D offset inside a fixed grid, plus 3 for class-token pairs; zero-initialised.
        # Key name as in CAE's modeling_finetune.py:77-79 so its checkpoints map one-to-one.
        self.rel_pos_bias_grid = rel_pos_bias_grid
        if rel_pos_bias_grid is not None:
            h, w = rel_pos_bias_grid
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * h - 1) * (2 * w - 1) + 3, num_heads))
            self.register_buffer('relative_position_index',
                                 beit_relative_position_index(h, w, num_prefix_tokens),
                                 persistent=False)
        # ViTDet (detectron2 vit.py:59-66): zero-initialised (rel_pos_zero_init=True) per-axis
        # tables of 2*size-1 offsets; names as detectron2's so its checkpoints map one-to-one
        self.decomposed_grid = decomposed_grid
        if decomposed_grid is not None:
            if num_prefix_tokens:
                raise ValueError('decomposed relative position works on the patch grid only: '
                                 'set with_cls_token=False (as ViTDet)')
            head_dims = embed_dims // num_heads
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * decomposed_grid[0] - 1, head_dims))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * decomposed_grid[1] - 1, head_dims))
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def _qkv_and_mask(self, x, grid_hw):
        """q, k, v (B, heads, N, head_dims) and the additive relative position terms (or None)."""
        b, n, c = x.shape
        bias = self.qkv.bias
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        # LoMaR adds the relative term of the *unscaled* queries to the scaled logits:
        # attn = q k^T * scale + rpe_k(q) (official vision_transformer_irpe.py:135-138)
        mask = self.rpe_k(q, grid_hw) if self.rpe_k is not None else None
        if self.rel_pos_bias_grid is not None:
            if n != self.relative_position_index.shape[0]:
                raise ValueError(f'relative position bias of a {self.rel_pos_bias_grid} grid '
                                 f'got {n} tokens: run at img_size or resample the tables')
            bias = self.relative_position_bias_table[self.relative_position_index]
            bias = bias.permute(2, 0, 1)[None].to(q.dtype)  # (1, heads, n, n)
            mask = bias if mask is None else mask + bias
        if self.decomposed_grid is not None:
            rel = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, grid_hw)
            mask = rel if mask is None else mask + rel
        return q, k, v, mask

    def forward(self, x, grid_hw=None):
        b, n, c = x.shape
        q, k, v, mask = self._qkv_and_mask(x, grid_hw)
        x = attention(q, k, v, mask, self.scale, self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))

    def weights(self, x, grid_hw=None):
        """The attention weights softmax(q k^T * scale + terms), (B, heads, N, N): what
        DINO's ``get_last_selfattention`` returns (dino vision_transformer.py:80-92)."""
        q, k, _, mask = self._qkv_and_mask(x, grid_hw)
        logits = q @ k.transpose(-2, -1) * self.scale
        return (logits if mask is None else logits + mask).softmax(-1)


def attention(q, k, v, mask, scale, dropout_p=0.):
    """softmax(q k^T * scale + mask) v for (B, heads, N, head_dims) q, k, v.

    ``F.scaled_dot_product_attention`` (a fused kernel) unless the additive ``mask`` needs a
    gradient (a learned relative position term while training): SDPA then runs its math
    fallback, which scales q and k separately and checks every row for -inf before the softmax;
    here one ``baddbmm`` adds the term and the scale inside the matrix product instead (same
    function: about 2% of a LoMaR training step saved, ``benchmarks/README.md``).
    """
    if mask is None or not (torch.is_grad_enabled() and mask.requires_grad):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    b, h, n, d = q.shape
    logits = torch.baddbmm(mask.expand(b, h, n, k.shape[2]).reshape(b * h, n, -1),
                           q.reshape(b * h, n, d), k.reshape(b * h, -1, d).transpose(1, 2),
                           alpha=scale)
    weights = F.dropout(logits.softmax(-1), dropout_p) if dropout_p else logits.softmax(-1)
    return torch.bmm(weights, v.reshape(b * h, -1, d)).view(b, h, n, d)


def beit_relative_position_index(h, w, num_prefix_tokens=1):
    """(prefix + h*w, prefix + h*w) indices into a BEiT relative position bias table: patch pairs
    by offset, (dy + h - 1) * (2w - 1) + dx + w - 1; then class token as query, as key, and the
    class-token pair get the last three entries (CAE modeling_finetune.py:83-97)."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()])
    rel = coords[:, :, None] - coords[:, None, :]
    index = (rel[0] + h - 1) * (2 * w - 1) + rel[1] + w - 1
    if not num_prefix_tokens:
        return index
    num = (2 * h - 1) * (2 * w - 1)
    full = index.new_zeros(h * w + 1, h * w + 1)
    full[1:, 1:] = index
    full[0, :], full[:, 0], full[0, 0] = num, num + 1, num + 2
    return full


def window_partition(x, grid_hw, window_size):
    """(B, h*w, C) -> (B * num_windows, ws*ws, C), zero-padding the grid to window multiples."""
    b, _, c = x.shape
    h, w = grid_hw
    x = x.view(b, h, w, c)
    pad_h, pad_w = -h % window_size, -w % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window_size, window_size, wp // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, c), (hp, wp)


def window_unpartition(windows, grid_hw, padded_hw, window_size):
    """Inverse of :func:`window_partition` (padding removed)."""
    (h, w), (hp, wp) = grid_hw, padded_hw
    c = windows.shape[-1]
    x = windows.view(-1, hp // window_size, wp // window_size, window_size, window_size, c)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, hp, wp, c)
    return x[:, :h, :w].reshape(-1, h * w, c)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (timm's parameter names, so timm/MAE/CAE weights map one-to-one)."""

    def __init__(self, embed_dims, hidden_dims, drop=0.):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LayerScale(nn.Module):

    def __init__(self, dims, init_value):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dims))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    With ``window_size > 0`` attention runs inside non-overlapping windows of the patch grid
    (ViTDet); the input must then have no prefix (class) token.
    """

    def __init__(self, embed_dims, num_heads, mlp_hidden_dims, qkv_bias=True, drop_rate=0.,
                 attn_drop_rate=0., drop_path_rate=0., layer_scale_init_value=0., rel_pos=None,
                 window_size=0, rel_pos_bias_grid=None, num_prefix_tokens=1,
                 decomposed_grid=None):
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = Attention(embed_dims, num_heads, qkv_bias, attn_drop_rate, drop_rate,
                              rel_pos, rel_pos_bias_grid, num_prefix_tokens, decomposed_grid)
        self.ls1 = (LayerScale(embed_dims, layer_scale_init_value)
                    if layer_scale_init_value > 0 else nn.Identity())
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.mlp = Mlp(embed_dims, mlp_hidden_dims, drop_rate)
        self.ls2 = (LayerScale(embed_dims, layer_scale_init_value)
                    if layer_scale_init_value > 0 else nn.Identity())
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def _attention(self, x, grid_hw):
        if not self.window_size:
            return self.attn(x, grid_hw)
        windows, padded_hw = window_partition(x, grid_hw, self.window_size)
        windows = self.attn(windows, (self.window_size, self.window_size))
        return window_unpartition(windows, grid_hw, padded_hw, self.window_size)

    def forward(self, x, grid_hw=None):
        x = x + self.drop_path(self.ls1(self._attention(self.norm1(x), grid_hw)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


@MODELS.register_module()
class VisionTransformer(BaseModule):
    """Plain ViT shared by pretraining and transfer.

    Takes the arguments of ``mmpretrain.VisionTransformer`` that mmpose's ViTPose configs pass
    (non-square ``img_size``, ``patch_cfg=dict(padding=2)``, an ``arch`` dict with mmpretrain's
    key names), so that such a config only needs its backbone ``type`` changed.

    Args:
        arch: 'tiny' | 'small' | 'base' | 'large' | 'huge', or a dict with embed_dims, depth
            (or mmpretrain's num_layers), num_heads, mlp_hidden_dims (or feedforward_channels);
            missing keys are taken from 'base'.
        img_size: input size, int or (H, W); sets the grid of a learned position embedding
            (unless ``learned_pos_grid='pretrain'``) and of the relative position tables.
        patch_size: int, or (h, w) for the patch embedding.
        patch_cfg: mmpretrain's patch embedding options; only ``padding`` ('corner' by default,
            or an int / (h, w): see :class:`PatchEmbed`).
        pretrain_img_size: size the pretrained weights were trained at, int or (H, W). A fixed
            sin-cos table that a checkpoint does not store is rebuilt at this grid when it starts
            a learned one.
        pos_embed: 'sincos' (fixed, MAE/CAE), 'learned' (timm/BEiT), or None.
        learned_pos_grid: where a learned table lives: 'input' (the ``img_size`` grid; a
            pretrained table is resampled once, on load: mmseg MAE/BEiT ``resize_abs_pos_embed``)
            or 'pretrain' (the ``pretrain_img_size`` grid, resampled to the input in every
            forward: ViTDet, detectron2 ``get_abs_pos``).
        sincos_order: channel order of the fixed table, 'mae' or 'cae' (each method's own, see
            :func:`sincos_pos_embed_2d`).
        with_cls_token: prepend a class token.
        qkv_bias: True, False or 'qv' (see :class:`Attention`).
        drop_path_rate: stochastic depth, increasing linearly to this value over blocks.
        rel_pos: relative position in every block: 'contextual' (or True) for LoMaR's
            :class:`ContextualKeyRPE` (``rel_pos_ratio`` sets its bucketing, official: 1.9);
            'decomposed' for ViTDet's zero-initialised per-axis tables, sized for the window in
            windowed blocks and for the ``img_size`` grid in global ones; False for none.
        rel_pos_bias: BEiT's per-block relative position bias over the ``img_size`` grid (the
            window's in windowed blocks; CAE's fine-tuning default), zero-initialised.
        window_size: > 0 runs attention in windows of this many patches per side, except in
            ``global_attn_indices`` (ViTDet). Needs ``with_cls_token=False``.
        layer_scale_init_value: > 0 enables LayerScale (CAE/BEiT).
        out_indices: blocks whose outputs are returned, an int or a sequence (negative counts
            from the end).
        out_type: 'featmap' (B, C, h, w) maps for dense heads, 'cls_token' (B, C),
            'avg_featmap' (B, C) mean of patch tokens, or 'raw' (B, N, C) tokens.
        final_norm: apply the final LayerNorm to the last block's output. With
            ``out_type='avg_featmap'`` and ``final_norm=False`` the patch tokens are averaged
            first and a new LayerNorm ``fc_norm`` is applied to the mean: the fine-tune feature
            of official MAE (``models_vit.py`` global_pool), LoMaR (``models_vit_rp.py``) and CAE
            (``use_mean_pooling``), and of mmpretrain's MAE fine-tune recipe.
        fc_norm_from_norm: when the pretrained checkpoint has a final norm and no ``fc_norm``, start
            ``fc_norm`` from it (CAE's fine-tuning); otherwise ``fc_norm`` starts anew (MAE, LoMaR).
        linear_init: 'trunc_normal' (timm/BEiT: std 0.02) or 'xavier_uniform' (the official MAE,
            LoMaR and CAE pretraining models) for the Linear layers.
        out_scales: refused: the pyramid is the neck's (``ViTFeaturePyramid`` or
            ``SimpleFeaturePyramid`` before the FPN, as mmdet's ViTDet builds it), not the
            backbone's; the error names the config to write.
        with_cp: activation checkpointing of every block while training (recompute in the
            backward pass instead of storing activations: less memory, ~1/3 more compute).
        frozen_stages: freeze (no gradient, eval mode) the embeddings and the first
            ``frozen_stages`` blocks; ``depth`` freezes the whole backbone (linear probing).
        init_cfg: pretrained weights as every OpenMMLab config gives them,
            ``dict(type='Pretrained', checkpoint=PATH)``: a checkpoint of any source of
            :mod:`.converters` (``source=`` forces one; 'auto' by default), or a training work
            dir, whose ``last_checkpoint`` is loaded. Our loader runs it in ``init_weights``
            (keys converted, tables adapted, mismatches refused, a report printed) instead of
            mmengine's, which would load a foreign checkpoint silently.
        pretrained: mmseg's deprecated spelling of the same (its segmentors hand a config's
            ``model.pretrained`` to the backbone, e.g. mmseg's own MAE/BEiT UperNet configs):
            taken as ``init_cfg`` with a deprecation warning, as mmseg's backbones do.
    """

    def __init__(self, arch='base', img_size=224, patch_size=16, in_channels=3,
                 pos_embed='sincos', sincos_order='mae', with_cls_token=True, qkv_bias=True,
                 drop_rate=0.,
                 attn_drop_rate=0., drop_path_rate=0., layer_scale_init_value=0.,
                 rel_pos=False, rel_pos_ratio=1.9, rel_pos_bias=False, window_size=0,
                 global_attn_indices=(), pretrain_img_size=224, learned_pos_grid='input',
                 out_indices=(-1, ), out_type='featmap', out_scales=None, final_norm=True,
                 with_cp=False, frozen_stages=-1, linear_init='trunc_normal',
                 fc_norm_from_norm=False, patch_cfg=None, init_cfg=None, pretrained=None):
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('both pretrained= and init_cfg= set: give the weights once, '
                                 "init_cfg=dict(type='Pretrained', checkpoint=...)")
            warnings.warn('DeprecationWarning: pretrained is deprecated, please use '
                          f"init_cfg=dict(type='Pretrained', checkpoint={pretrained!r})")
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        # the checkpoint and source of init_cfg=Pretrained, loaded by init_weights (last)
        self.pretrained, self.pretrained_source = None, 'auto'
        if init_cfg is not None and init_cfg.get('type') == 'Pretrained':
            unknown = set(init_cfg) - {'type', 'checkpoint', 'source', 'prefix', 'map_location'}
            if unknown:
                raise ValueError(f'init_cfg=Pretrained: unknown keys {sorted(unknown)}; it takes '
                                 "checkpoint= and source= ('auto' or one of "
                                 'lomar_transfer/sources, mmpretrain, lomar_transfer)')
            self.pretrained = init_cfg['checkpoint']
            self.pretrained_source = init_cfg.get('source', 'auto')
            init_cfg = None
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in ARCH_SETTINGS:
                raise KeyError(f'unknown ViT arch {arch!r}; choose one of {list(ARCH_SETTINGS)} '
                               'or pass a dict(embed_dims=, depth=, num_heads=, mlp_hidden_dims=)')
            arch = ARCH_SETTINGS[arch]
        else:
            keys = ('embed_dims', 'depth', 'num_heads', 'mlp_hidden_dims')
            # mmpretrain's names too (mmpose's ViTPose-S config); an unknown key is an error, not
            # a silently 'base'-sized model
            alias = dict(num_layers='depth', feedforward_channels='mlp_hidden_dims')
            arch = {alias.get(k, k): v for k, v in arch.items()}
            if set(arch) - set(keys):
                raise KeyError(f'unknown ViT arch keys {sorted(set(arch) - set(keys))}; '
                               f'expected some of {keys}')
            base = dict(zip(keys, ARCH_SETTINGS['base']))
            base.update(arch)
            arch = (base['embed_dims'], base['depth'], base['num_heads'],
                    base['mlp_hidden_dims'])
        self.embed_dims, self.depth, self.num_heads, mlp_hidden_dims = arch
        if out_type not in ('featmap', 'cls_token', 'avg_featmap', 'raw'):
            raise ValueError(f'unknown out_type {out_type!r}')
        if out_type == 'cls_token' and not with_cls_token:
            raise ValueError("out_type='cls_token' needs with_cls_token=True")
        if pos_embed not in ('sincos', 'learned', None):
            raise ValueError(f"pos_embed must be 'sincos', 'learned' or None, got {pos_embed!r}")
        if sincos_order not in SINCOS_ORDERS:
            raise ValueError(f'sincos_order must be one of {SINCOS_ORDERS}, got {sincos_order!r}')
        if linear_init not in ('trunc_normal', 'xavier_uniform'):
            raise ValueError("linear_init must be 'trunc_normal' or 'xavier_uniform', got "
                             f'{linear_init!r}')
        self.sincos_order, self.linear_init = sincos_order, linear_init
        self.fc_norm_from_norm = fc_norm_from_norm
        if window_size and with_cls_token:
            raise ValueError('windowed attention (window_size > 0) works on the patch grid '
                             'only: set with_cls_token=False')
        if rel_pos not in (False, None, True, 'contextual', 'decomposed'):
            raise ValueError("rel_pos must be False, 'contextual' (True) or 'decomposed', got "
                             f'{rel_pos!r}')
        if learned_pos_grid not in ('input', 'pretrain'):
            raise ValueError("learned_pos_grid must be 'input' or 'pretrain', got "
                             f'{learned_pos_grid!r}')
        patch_cfg = dict(patch_cfg or {})
        padding = patch_cfg.pop('padding', 'corner')
        if patch_cfg:
            raise ValueError(f'patch_cfg supports only padding, got {sorted(patch_cfg)}')
        self.patch_embed = PatchEmbed(patch_size, in_channels, self.embed_dims, padding)
        self.patch_size = patch_size
        self.grid_hw = self.patch_embed.grid_size(to_2tuple(img_size))
        # the pretraining's grid: its patch embedding had no padding (MAE, CAE, LoMaR)
        self.pretrain_grid_hw = tuple(
            s // p for s, p in zip(to_2tuple(pretrain_img_size), self.patch_embed.patch_size))
        self.pos_grid_hw = (self.pretrain_grid_hw if learned_pos_grid == 'pretrain'
                            else self.grid_hw)
        self.out_type = out_type
        self.final_norm = final_norm
        if isinstance(out_indices, int):  # mmpretrain's default is -1
            out_indices = (out_indices, )
        self.out_indices = sorted(i % self.depth for i in out_indices)
        self.num_prefix_tokens = int(with_cls_token)

        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims)) if with_cls_token else None
        self.pos_embed_type = pos_embed
        if pos_embed == 'learned':
            num_tokens = self.num_prefix_tokens + self.pos_grid_hw[0] * self.pos_grid_hw[1]
            self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, self.embed_dims))
        else:
            self.pos_embed = None
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, self.depth).tolist()
        global_attn_indices = {i % self.depth for i in global_attn_indices}
        head_dims = self.embed_dims // self.num_heads
        # ``layers`` (mmpretrain's name, format 3): OpenMMLab's name-parsing layer-decay
        # constructors (mmpose, mmseg) read the layer of 'backbone.layers.N.*'; the blocks'
        # own parameters keep timm's names (norm1, attn.qkv, mlp.fc1, ...)
        self.layers = nn.ModuleList([
            Block(self.embed_dims, self.num_heads, mlp_hidden_dims, qkv_bias, drop_rate,
                  attn_drop_rate, dpr[i], layer_scale_init_value,
                  rel_pos=(ContextualKeyRPE(head_dims, rel_pos_ratio, self.num_prefix_tokens)
                           if rel_pos in (True, 'contextual') else None),
                  window_size=0 if i in global_attn_indices else window_size,
                  rel_pos_bias_grid=(self._block_grid(i in global_attn_indices, window_size)
                                     if rel_pos_bias else None),
                  num_prefix_tokens=self.num_prefix_tokens,
                  decomposed_grid=(self._block_grid(i in global_attn_indices, window_size)
                                   if rel_pos == 'decomposed' else None))
            for i in range(self.depth)
        ])
        self.norm = nn.LayerNorm(self.embed_dims, eps=1e-6) if final_norm else nn.Identity()
        # pooled-feature norm of the official fine-tune models (replaces the per-token norm)
        self.fc_norm = (nn.LayerNorm(self.embed_dims, eps=1e-6)
                        if out_type == 'avg_featmap' and not final_norm else None)
        self.with_cp = with_cp
        if out_scales is not None:  # (a backbone option before: one way to build a pyramid)
            raise ValueError(
                f'out_scales={tuple(out_scales)}: the feature pyramid is a neck, not a backbone '
                "option: neck=[dict(type='lomar_transfer.ViTFeaturePyramid', "
                f'in_channels={self.embed_dims}, scales={tuple(out_scales)}), <the FPN>] '
                '(configs/examples/mask-rcnn_vit-base-p16_fpn_1x_coco.py)')
        if frozen_stages > self.depth:
            raise ValueError(f'frozen_stages={frozen_stages} exceeds the {self.depth} blocks')
        self.frozen_stages = frozen_stages
        self._freeze_stages()

    def _block_grid(self, is_global, window_size):
        # detectron2 vit.py:294: input_size if window_size == 0 else (window_size, window_size)
        return (window_size, window_size) if window_size and not is_global else self.grid_hw

    def _frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        mods = [self.patch_embed, *self.layers[:self.frozen_stages]]
        return mods + [self.norm] if self.frozen_stages == self.depth else mods

    def _freeze_stages(self):
        for p in (self.cls_token, self.pos_embed):
            if self.frozen_stages >= 0 and isinstance(p, nn.Parameter):
                p.requires_grad = False
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()  # frozen blocks keep dropout / drop path off
        return self

    def init_weights(self):
        super().init_weights()
        # MAE/timm initialisation: xavier on the patch projection seen as a linear layer,
        # truncated normal for linear layers and tokens.
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if self.linear_init == 'xavier_uniform':
                    nn.init.xavier_uniform_(m.weight)
                else:
                    trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for p in (self.cls_token, self.pos_embed, getattr(self, 'mask_token', None)):
            if isinstance(p, nn.Parameter):
                trunc_normal_(p, std=.02)
        if self.pretrained:  # last: nothing may overwrite loaded weights
            load_pretrained_backbone(self, self.pretrained, self.pretrained_source)

    # 2: LoMaR's relative term uses unscaled queries, CAE's sin-cos table is in CAE's order.
    # 3: the block list is ``layers`` (was ``blocks``, timm's name; migrated on load).
    # Stored in every state dict this class writes (torch's per-module ``version`` metadata).
    _version = 3

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        # every loading reaches the backbone here (init_cfg, load_from, --resume, test, tools):
        # the one place where incoming weights are adapted to this model (weights.py)
        notes = adapt_state_dict(self, state_dict, prefix, local_metadata.get('version'))
        report_notes(self, prefix, notes)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def abs_pos_embed(self, grid_hw):
        """Absolute position embedding for all tokens of a grid, (1, prefix + h*w, C) or None."""
        if self.pos_embed_type == 'learned':
            return resample_abs_pos_embed(self.pos_embed, grid_hw, self.pos_grid_hw,
                                          self.num_prefix_tokens)
        if self.pos_embed_type == 'sincos':
            emb = sincos_pos_embed_2d(grid_hw, self.embed_dims, order=self.sincos_order).to(
                self.patch_embed.proj.weight)
            prefix = emb.new_zeros(self.num_prefix_tokens, self.embed_dims)
            return torch.cat([prefix, emb])[None]
        return None

    def _embed(self, x):
        """Images -> tokens with the class token and absolute positions, and the grid."""
        b = x.shape[0]
        x, grid_hw = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        pos = self.abs_pos_embed(grid_hw)
        return self.pos_drop(x if pos is None else x + pos), grid_hw

    def forward(self, x):
        x, grid_hw = self._embed(x)
        outs = []
        for i, block in enumerate(self.layers):
            x = self._run_block(block, x, grid_hw)
            if i == self.depth - 1:
                x = self.norm(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, grid_hw))
        return tuple(outs)

    def last_attention(self, x):
        """The last block's attention weights for images ``x``, (B, heads, N, N) over its tokens
        (class token first where the model has one): the input of attention-map figures."""
        x, grid_hw = self._embed(x)
        for block in self.layers[:-1]:
            x = block(x, grid_hw)
        last = self.layers[-1]
        if last.window_size:
            raise ValueError('the last block attends within windows: its maps are not over the '
                             'image (build the model with the last block global)')
        return last.attn.weights(last.norm1(x), grid_hw), grid_hw

    def encode(self, tokens, grid_hw=None):
        """Dropout, all blocks and the final norm on an assembled token sequence: the encoder
        path of the pretraining views (MAE's visible patches, CAE's, LoMaR's windows)."""
        tokens = self.pos_drop(tokens)
        for block in self.layers:
            tokens = self._run_block(block, tokens, grid_hw)
        return self.norm(tokens)

    def _run_block(self, block, x, grid_hw):
        if self.with_cp and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, grid_hw, use_reentrant=False)
        return block(x, grid_hw)

    def get_layer_depth(self, param_name, prefix=''):
        """(layer id, number of layers) for layer-wise lr decay, as mmpretrain's ViTs define it:
        embeddings are layer 0, block i (``layers.i.*``) is layer i + 1, the rest (final norm)
        layer depth + 1. mmpose's and mmseg's constructors parse the names the same way."""
        num_layers = self.depth + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers  # not part of the backbone: no decay
        name = param_name[len(prefix):]
        if name.startswith(('cls_token', 'pos_embed', 'patch_embed', 'mask_token')):
            return 0, num_layers
        if name.startswith('layers.'):
            return int(name.split('.')[1]) + 1, num_layers
        return num_layers - 1, num_layers

    def _format_output(self, x, grid_hw):
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        patches = x[:, self.num_prefix_tokens:]
        if self.out_type == 'avg_featmap':
            pooled = patches.mean(dim=1)
            return self.fc_norm(pooled) if self.fc_norm is not None else pooled
        return patches.transpose(1, 2).reshape(x.shape[0], self.embed_dims, *grid_hw)
