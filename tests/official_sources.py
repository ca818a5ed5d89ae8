"""Re-creations of the official models behind the weight sources of ``lomar_transfer/sources``
(supervised DeiT / timm, MoCo v3, DINO, iBOT, BEiT), each with its official parameter names so
that its ``state_dict()`` is written in the release's layout. Written from reading the official
code (cited per class), not copied. timm's ``VisionTransformer`` is the official model of the
timm and DeiT releases (DeiT's models.py builds it) and MoCo v3's base class (vits.py:25).
"""
from functools import partial

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer as TimmViT

from official_models import (Block, CAEAttention, MAEAttention, Mlp, PatchEmbed,
                             beit_relative_position_index, cae_sincos_table)

DIM, DEPTH, HEADS, PATCH, IMG = 64, 2, 4, 16, 112
GRID = IMG // PATCH


def timm_vit(num_classes=10, dim=DIM, depth=DEPTH):
    """timm / DeiT ViT-B/16 in miniature: qkv bias, LayerNorm eps 1e-6, learned pos_embed with a
    class slot (DeiT models.py deit_base_patch16_224)."""
    return TimmViT(img_size=IMG, patch_size=PATCH, embed_dim=dim, depth=depth, num_heads=HEADS,
                   mlp_ratio=4, qkv_bias=True, num_classes=num_classes,
                   norm_layer=partial(nn.LayerNorm, eps=1e-6))


def mocov3_vit(projector=True, depth=DEPTH):
    """moco-v3 vits.py VisionTransformerMoCo: timm's ViT with the fixed 2-D sin-cos table of
    :53-69 (meshgrid 'ij' of (w, h) ranges, [sin w, cos w, sin h, cos h], zero class slot: the
    formula CAE copied, ``cae_sincos_table``), stored as a frozen parameter; with ``projector``
    the pretraining encoder's head (moco/builder.py:113-119 ``_build_mlp(3, ...)``: Linear without
    bias, BN, ReLU, ..., last BN without affine), else the linear classifier of main_lincls.py."""
    model = timm_vit(depth=depth)
    model.pos_embed = nn.Parameter(cae_sincos_table(GRID, DIM), requires_grad=False)
    if projector:
        hidden, out = 2 * DIM, DIM // 2
        model.head = nn.Sequential(
            nn.Linear(DIM, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, out, bias=False), nn.BatchNorm1d(out, affine=False))
    return model


class DINOViT(nn.Module):
    """dino vision_transformer.py VisionTransformer (:134-233, vit_base's qkv bias and eps 1e-6)
    at its training size (interpolate_pos_encoding returns the table unchanged there, :177-178);
    iBOT's (ibot models/vision_transformer.py) is the same network, whose student adds
    ``masked_embed`` (:171-172)."""

    def __init__(self, masked_embed=False, depth=DEPTH):
        super().__init__()
        self.patch_embed = PatchEmbed(PATCH, DIM)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + GRID * GRID, DIM))
        self.blocks = nn.ModuleList(Block(DIM, HEADS, MAEAttention(DIM, HEADS))
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(DIM, eps=1e-6)
        if masked_embed:
            self.masked_embed = nn.Parameter(torch.zeros(1, DIM))

    def forward_features(self, x):
        """All tokens after the final norm (get_intermediate_layers(x, 1), :225-233)."""
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def get_last_selfattention(self, x):
        """:216-223: the blocks but the last, then the last one's attention weights
        softmax(q k^T * scale) of its normed input (Attention.forward, :80-92)."""
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks[:-1]:
            x = blk(x)
        attn, x = self.blocks[-1].attn, self.blocks[-1].norm1(x)
        b, n, c = x.shape
        q, k, _ = attn.qkv(x).reshape(b, n, 3, attn.heads, c // attn.heads).permute(2, 0, 3, 1, 4)
        return ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1)


class BEiTAttention(CAEAttention):
    """beit/modeling_finetune.py Attention: q/v biases, zero k bias, ``q * scale``, the shared
    relative position bias added to the logits (``rel_pos_bias`` argument)."""

    def forward(self, x, rel_pos_bias):
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        q, k, v = nn.functional.linear(x, self.qkv.weight, bias).reshape(
            b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1) + rel_pos_bias[None]
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, -1))


class BEiTBlock(nn.Module):
    """beit/modeling_finetune.py Block with LayerScale ``gamma_1/2``."""

    def __init__(self, init_values=0.1):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(DIM, eps=1e-6), nn.LayerNorm(DIM, eps=1e-6)
        self.attn, self.mlp = BEiTAttention(DIM, HEADS), Mlp(DIM, 4 * DIM)
        self.gamma_1 = nn.Parameter(init_values * torch.ones(DIM))
        self.gamma_2 = nn.Parameter(init_values * torch.ones(DIM))

    def forward(self, x, rel_pos_bias):
        x = x + self.gamma_1 * self.attn(self.norm1(x), rel_pos_bias)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class RelativePositionBias(nn.Module):
    """beit/modeling_finetune.py RelativePositionBias: one table, (heads, n, n) per call."""

    def __init__(self):
        super().__init__()
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * GRID - 1)**2 + 3, HEADS))
        self.register_buffer('relative_position_index', beit_relative_position_index(GRID))

    def forward(self):
        n = GRID * GRID + 1
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)


class BEiTEncoder(nn.Module):
    """beit/modeling_pretrain.py VisionTransformerForMaskedImageModeling as released
    (use_abs_pos_emb=False, use_shared_rel_pos_bias=True, init_values 0.1): no absolute table,
    one shared relative position bias, ``mask_token``, final ``norm`` and the tokenizer head
    ``lm_head``. ``forward_features`` without masking: all tokens after the final norm."""

    def __init__(self, vocab=32, depth=DEPTH):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.patch_embed = PatchEmbed(PATCH, DIM)
        self.rel_pos_bias = RelativePositionBias()
        self.blocks = nn.ModuleList(BEiTBlock() for _ in range(depth))
        self.norm = nn.LayerNorm(DIM, eps=1e-6)
        self.lm_head = nn.Linear(DIM, vocab)

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        bias = self.rel_pos_bias()
        for blk in self.blocks:
            x = blk(x, bias)
        return self.norm(x)
