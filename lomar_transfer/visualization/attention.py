"""Attention maps of a ViT's last block, drawn over the image as the papers draw them.

- With a class token: the class token's attention to every patch, per head (DINO's figure,
  dino ``visualize_attention.py``, from ``get_last_selfattention``).
- Without one (ViTDet-style backbones), or when asked: the attention of one chosen patch to
  every patch (CAE's figure of MoCo v3 beside CAE).

Each map is min-max scaled on its own, shown as a colour map blended over the image.
"""
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..fileio import read_checkpoint
from ..models.backbones.converters import convert_to_lomar_vit
from ..models.backbones.pretrained import load_pretrained_backbone
from ..sources import SOURCES
from .reconstruction import VisualizationError, save_grid

# mmpretrain's ImageNet normalisation (RGB, 0-255), which every config of ours uses
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
# heads of the standard ViT widths (timm / mmpretrain arch tables); others: 64 dims per head
HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}


def source_backbone(source, checkpoint, img_size, num_heads=None):
    """Our ViT with ``source``'s preset and the size of the release file ``checkpoint`` (width,
    depth, MLP and patch size read from its weights; heads from the width unless given), its
    weights loaded as ``init_cfg=Pretrained`` loads them."""
    from ..models.backbones.vision_transformer import VisionTransformer
    if source not in SOURCES:
        raise VisualizationError(f'unknown source {source!r}: one of {", ".join(SOURCES)}, or '
                                 'a config file')
    try:
        state, _ = convert_to_lomar_vit(read_checkpoint(checkpoint), source)
    except ValueError as e:
        raise VisualizationError(f'{checkpoint}: {e}') from e
    proj = state['patch_embed.proj.weight']
    depth = 1 + max(int(k.split('.')[1]) for k in state if k.startswith('layers.'))
    arch = dict(embed_dims=proj.shape[0], depth=depth,
                num_heads=num_heads or HEADS.get(proj.shape[0], max(1, proj.shape[0] // 64)),
                mlp_hidden_dims=state['layers.0.mlp.fc1.weight'].shape[0])
    model = VisionTransformer(arch=arch, patch_size=proj.shape[-1], img_size=img_size,
                              out_type='raw', **SOURCES[source].encoder)
    load_pretrained_backbone(model, checkpoint, source)  # (init_weights would dump every tensor)
    return model


@dataclass
class AttentionMaps:
    """One image's maps: ``maps`` (heads, h, w) over the patch grid, from the class token
    (``patch`` None) or from patch ``patch`` = (row, column)."""
    maps: np.ndarray
    patch: tuple = None

    def describe(self):
        return ('class token' if self.patch is None else
                f'patch (row {self.patch[0]}, column {self.patch[1]})') + \
            f', {len(self.maps)} heads'


@torch.no_grad()
def attention_maps(model, image, patch=None):
    """The last block's maps for one RGB uint8 image (H, W, 3) at the model's input size."""
    x = torch.from_numpy(np.ascontiguousarray(image)).float().permute(2, 0, 1)[None]
    x = (x - x.new_tensor(MEAN)[:, None, None]) / x.new_tensor(STD)[:, None, None]
    param = next(model.parameters())
    weights, (h, w) = model.last_attention(x.to(param))
    prefix = model.num_prefix_tokens
    if patch is None and not prefix:
        patch = (h // 2, w // 2)  # no class token: the centre patch
    if patch is not None:
        if not (0 <= patch[0] < h and 0 <= patch[1] < w):
            raise VisualizationError(f'--patch {patch[0]} {patch[1]} is outside the {h}x{w} '
                                     'patch grid')
        row = prefix + patch[0] * w + patch[1]
    else:
        row = 0
    maps = weights[0, :, row, prefix:].reshape(-1, h, w).float().cpu().numpy()
    return AttentionMaps(maps, patch)


def _overlay(image, heat):
    heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-12)
    heat = cv2.resize(heat.astype(np.float32), image.shape[1::-1],
                      interpolation=cv2.INTER_NEAREST)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (0.4 * image + 0.6 * colour).round().astype(np.uint8)


def panels(image, result, patch_size):
    """Input (the chosen patch outlined), the mean over heads, then each head."""
    shown = image.copy()
    if result.patch is not None:
        y, x = (c * p for c, p in zip(result.patch, patch_size))
        cv2.rectangle(shown, (x, y), (x + patch_size[1] - 1, y + patch_size[0] - 1),
                      (255, 255, 255), 1)
    maps = [result.maps.mean(0), *result.maps]
    titles = ['input', 'mean', *[f'head {i + 1}' for i in range(len(result.maps))]]
    return [shown, *[_overlay(image, m) for m in maps]], titles


def save_attention_grid(path, image, result, patch_size, scale=1):
    pictures, titles = panels(image, result, patch_size)
    return save_grid(path, pictures, titles, scale=scale)
