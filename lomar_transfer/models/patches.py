"""Images as patch grids: the pixels of chosen patches, and MAE's per-patch normalisation.
Shared by LoMaR's encoder (window patches in, as the patch embedding flattens them), its head
and CAE's pixel target (patch pixels out, in MAE's patchify order)."""
import torch


def gather_patches(img, patch_ids, patch_size, channels_last):
    """(N, K, C*p*p) pixels of the patches ``patch_ids`` (N, K) of a batch ``img`` (B, C, H, W),
    each id indexing the batch's patch grids laid end to end (``image * h * w + row * w + col``).
    The grid is a view of the images: only the chosen patches are copied. Pixel order: (C, p, p)
    as a patch-embedding weight flattens, or (p, p, C) with ``channels_last`` as MAE's
    patchify."""
    b, c, hh, ww = img.shape
    h, w = hh // patch_size, ww // patch_size
    grid = img[:, :, :h * patch_size, :w * patch_size].reshape(b, c, h, patch_size, w,
                                                                patch_size)
    grid = grid.permute(0, 2, 4, 3, 5, 1) if channels_last else grid.permute(0, 2, 4, 1, 3, 5)
    image, patch = patch_ids // (h * w), patch_ids % (h * w)
    return grid[image, patch // w, patch % w].flatten(2)


def normalise_patch_pixels(patches, eps=1e-6):
    """Each patch's pixels to zero mean, unit variance (unbiased, + ``eps``): MAE's
    ``norm_pix_loss`` target (``models_mae.py:205-208``; mmpretrain ``MAEPretrainHead``)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps)**.5


def all_patch_ids(batch, grid_hw, device=None):
    """(B, h*w) ids of every patch of every image, for :func:`gather_patches`."""
    h, w = grid_hw
    return torch.arange(batch * h * w, device=device).view(batch, h * w)
