"""Reconstruction pictures of LoMaR / MAE / CAE pretraining models.

Four panels per image, as in the MAE paper's figures and the official demo
(facebookresearch/mae ``demo/mae_visualize.ipynb``, ``run_one_image``, lines 87-111 of the .ipynb
file): the input; the masked input (masked patches grey; LoMaR: its windows outlined as well);
the reconstruction (the prediction at the masked patches, the input elsewhere: the demo's
``im_paste = x * (1 - mask) + y * mask``, line 111); the target (what the loss compares the
prediction to).

Masks and predictions come from the algorithm itself: its ``loss`` runs unchanged (its own
masking, prediction and targets) while the head's ``loss`` call is recorded. The random masking is
seeded (the demo's ``torch.manual_seed(2)``, line 248) without changing the caller's RNG state.

De-normalisation: with per-patch normalised targets (``norm_pix``) a prediction is in units of
its patch's mean and standard deviation, which the model never predicts. They are taken from the
true patch (the exact inverse of the target normalisation, official ``models_mae.py:205-208``,
mmpretrain ``MAEPretrainHead.construct_target``), then the data preprocessor's per-channel
normalisation is undone, and pixels are clipped and rounded as the demo's ``show_image`` does
(line 73). So a reconstruction shows the structure the model predicts inside each patch, with the
true patch's mean colour and contrast. The official demo skips this step because its checkpoint
was trained on raw pixels (``PRETRAIN.md:20``: for visualisation, turn off ``--norm_pix_loss``).
"""
import contextlib
import copy
import inspect
import os.path as osp
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import torch

from ..fileio import CheckpointError, WriteError, atomic_write, read_checkpoint
from ..models.backbones.weights import (IncompatibleWeights, describe_size_mismatch,
                                       load_and_record)

GREY = 128  # masked patches, and the target where a method defines none (outside LoMaR windows)
TITLES = ('input', 'masked', 'reconstruction', 'target')
TITLE_HEIGHT = 18  # pixels above the panels of a grid
GAP = 4  # white pixels between panels
WINDOW_COLOURS = ((255, 60, 60), (60, 220, 60), (60, 120, 255), (255, 200, 0), (220, 0, 220),
                  (0, 220, 220))
PIXEL_CAE_CONFIG = 'configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py'
METHODS = {'LoMaR': 'lomar', 'MAE': 'mae', 'CAE': 'cae'}  # algorithm class -> method


class VisualizationError(ValueError):
    """A wrong input (config, checkpoint, image, model); its message is one line naming the fix."""


# ----------------------------------------------------------------------------- model and weights

def check_pretraining_config(cfg):
    """The method ('lomar', 'mae', 'cae') of a pretraining config, or a VisualizationError."""
    model = cfg.get('model') or {}
    kind = str(model.get('type', '')).split('.')[-1]
    name = cfg.filename or 'the config'
    if kind not in METHODS:
        raise VisualizationError(
            f'{name} is not a LoMaR/MAE/CAE pretraining config (its model is '
            f'{kind or "not set"}); pass the config the checkpoint was pretrained with, e.g. '
            'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py')
    target = str((model.get('target_generator') or {}).get('type', '')).split('.')[-1]
    if kind == 'CAE' and target != 'PixelTarget':
        raise VisualizationError(
            f'{name} trains CAE to predict {target or "non-pixel"} targets (DALL-E tokens), '
            f'which have no pixels to show; visualise a model pretrained with the pixel-target '
            f'config {PIXEL_CAE_CONFIG} (CPU-sized: configs/cae/cae_vit-tiny-p8_synthetic.py)')
    return METHODS[kind]


def build_pretraining_model(cfg):
    """Build the config's pretraining algorithm as the Runner does (CPU, weights not loaded)."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings
    check_pretraining_config(cfg)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        # CAE's TwoNormDataPreprocessor is a top-level key: the Runner hands it to the model
        # (mmengine runner.py:428)
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    return MODELS.build(model_cfg)


def load_pretraining_checkpoint(model, path):
    """Strictly load a whole-algorithm checkpoint (as tools/train.py writes it) through mmengine's
    loader (the backbone adapts older formats of ours on load): every tensor of the model and
    nothing else, or a one-line VisualizationError. Returns its meta."""
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    if not osp.isfile(path):
        raise VisualizationError(
            f'checkpoint not found: {path}; pass a pretraining checkpoint written by '
            'tools/train.py (work_dirs/<config name>/iter_*.pth or epoch_*.pth)')
    try:
        ckpt = read_checkpoint(path, 'cpu')
    except CheckpointError as e:
        raise VisualizationError(f'cannot read checkpoint {e}; copy it again or pass '
                                 'another') from e
    try:
        _, report = load_and_record(
            model, lambda: _load_checkpoint_to_model(model, ckpt, logger='silent'))
    except IncompatibleWeights as e:
        raise VisualizationError(f'{path}: {e}') from e
    found = [f'{len(keys)} {what} (e.g. {keys[0]})' for keys, what in (
        (report['missing'], 'missing'), (report['unexpected'], 'unexpected'),
        ([describe_size_mismatch(e) for e in report['errors']], 'of another shape')) if keys]
    if found:
        raise VisualizationError(
            f'{path} does not fit the model of this config ({", ".join(found)} tensors); pass '
            'the pretraining config it was trained with, and the whole-model checkpoint '
            'tools/train.py wrote (not a converted backbone)')
    return ckpt.get('meta', {})


# ----------------------------------------------------------------------------------- reconstruct

@dataclass
class Reconstruction:
    """The four panels of a batch, (B, H, W, 3) uint8 RGB each, and what they show."""
    method: str
    input: np.ndarray
    masked: np.ndarray
    reconstruction: np.ndarray
    target: np.ndarray
    mask: np.ndarray  # (B, h, w) bool: patches hidden from the encoder, whose pixels it predicts
    patch_size: int
    losses: dict = field(default_factory=dict)  # the algorithm's losses on this batch
    windows: Optional[np.ndarray] = None  # LoMaR: (B, num_windows, 2) top-left patch (row, col)
    window_patches: Optional[int] = None  # LoMaR: window side in patches
    masked_per_window: Optional[int] = None

    def panels(self, i):
        return [self.input[i], self.masked[i], self.reconstruction[i], self.target[i]]

    def titles(self, i):
        return [TITLES[0], f'masked {int(self.mask[i].sum())}/{self.mask[i].size}', *TITLES[2:]]

    def describe(self, i):
        """One line: what was masked, and the losses."""
        n, total = int(self.mask[i].sum()), self.mask[i].size
        what = f'{n}/{total} patches masked'
        if self.windows is not None:
            k = self.window_patches
            what = (f'{len(self.windows[i])} windows of {k}x{k} patches, {self.masked_per_window} '
                    f'masked in each ({n}/{total} patches masked in all)')
        losses = ', '.join(f'{name} {value:.4f}' for name, value in self.losses.items())
        return f'{self.method}: {what}; {losses}'


def _method(model):
    from mmpretrain.models.selfsup import CAE, MAE

    from ..models.algorithms import LoMaR
    from ..models.target_generators import PixelTarget
    for cls, method in ((LoMaR, 'lomar'), (MAE, 'mae'), (CAE, 'cae')):
        if isinstance(model, cls):
            if method == 'cae' and not isinstance(model.target_generator, PixelTarget):
                raise VisualizationError(
                    f'this CAE predicts {type(model.target_generator).__name__} targets, which '
                    f'have no pixels to show; use a model of {PIXEL_CAE_CONFIG}')
            return method
    raise VisualizationError(f'{type(model).__name__} is not a LoMaR, MAE or CAE pretraining '
                             'model; build the model of a pretraining config')


@contextlib.contextmanager
def _recording(module, name):
    """Record the (bound) arguments of every ``module.<name>(...)`` call, which still runs."""
    calls, method = [], getattr(module, name)
    signature = inspect.signature(method)

    def record(*args, **kwargs):
        calls.append(signature.bind(*args, **kwargs).arguments)
        return method(*args, **kwargs)

    setattr(module, name, record)  # an instance attribute shadows the method
    try:
        yield calls
    finally:
        delattr(module, name)


@contextlib.contextmanager
def _seeded(seed, device):
    """torch and numpy global RNGs seeded inside, restored after."""
    devices = []
    if device.type == 'cuda':
        devices = [torch.cuda.current_device() if device.index is None else device.index]
    state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def patchify(img, p):
    """(B, C, H, W) -> (B, h*w, p*p*C), pixels in (row, column, channel) order inside a patch:
    the targets' order (mmpretrain MAEPretrainHead.patchify, our PixelTarget and LoMaRHead)."""
    b, c, hh, ww = img.shape
    x = img.reshape(b, c, hh // p, p, ww // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (hh // p) * (ww // p), p * p * c)


def unpatchify(x, p, grid_hw):
    """Inverse of :func:`patchify`."""
    (h, w), b = grid_hw, x.shape[0]
    x = x.reshape(b, h, w, p, p, -1).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, -1, h * p, w * p)


def to_pixels(patches, ref, norm_pix, mean, std, p, grid_hw):
    """Target-space patches (B, L, p*p*C) -> (B, H, W, C) uint8 pixels. ``ref``: the normalised
    image the targets were made from; with ``norm_pix`` its patches' mean and std undo the
    per-patch normalisation (same unbiased variance and 1e-6 as the heads)."""
    if norm_pix:
        ref = patchify(ref, p)
        patches = patches * (ref.var(-1, keepdim=True) + 1.e-6)**.5 + ref.mean(-1, keepdim=True)
    img = unpatchify(patches, p, grid_hw) * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
    return img.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _run_mae(model, bgr, samples):
    pre = model.data_preprocessor
    data = pre(dict(inputs=bgr, data_samples=samples))
    with _recording(model.head, 'loss') as calls:
        losses = model.loss(data['inputs'], data['data_samples'])
    args = calls[0]  # MAE.loss: head.loss(pred, inputs, mask)
    img, mask = args['target'], args['mask'].bool()
    return dict(losses=losses, pred=args['pred'], target=model.head.construct_target(img),
                known=torch.ones_like(mask), mask=mask, ref=img, norm_pix=model.head.norm_pix,
                mean=pre.mean, std=pre.std)


def _run_lomar(model, bgr, samples):
    pre, head = model.data_preprocessor, model.head
    data = pre(dict(inputs=bgr, data_samples=samples))
    with _recording(head, 'loss') as calls:
        losses = model.loss(data['inputs'], data['data_samples'])
    args = calls[0]  # LoMaR.loss: head.loss(pred, inputs, mask, patch_ids)
    pred, img, mask_w, ids = args['pred'], args['img'], args['mask'], args['patch_ids']
    b, length = img.shape[0], model.backbone.grid_hw[0] * model.backbone.grid_hw[1]
    # windows -> the batch's patch grids (ids index them laid end to end). Per-image windows may
    # overlap: a patch masked in several windows gets the mean of their predictions
    flat, m = ids.flatten(), mask_w.flatten().float()
    count = pred.new_zeros(b * length).index_add_(0, flat, m)
    total = pred.new_zeros(b * length, pred.shape[-1]).index_add_(
        0, flat, pred.flatten(0, 1) * m[:, None])
    target = pred.new_zeros(b * length, pred.shape[-1])
    target[flat] = head.window_targets(img, ids).flatten(0, 1).to(target.dtype)
    known = torch.zeros(b * length, dtype=torch.bool, device=img.device)
    known[flat] = True
    # top-left patch of each window, grouped by image (the 'official' sampler interleaves them)
    local, w = ids % length, model.backbone.grid_hw[1]
    corners = torch.stack([(local // w).amin(1), (local % w).amin(1)], dim=1)
    order = torch.argsort(ids[:, 0] // length, stable=True)
    return dict(losses=losses, pred=(total / count.clamp(min=1)[:, None]).view(b, length, -1),
                target=target.view(b, length, -1), known=known.view(b, length),
                mask=(count > 0).view(b, length), ref=img, norm_pix=head.norm_pix,
                mean=pre.mean, std=pre.std,
                windows=corners[order].view(b, -1, 2).cpu().numpy(),
                window_patches=model.backbone.window_patches,
                masked_per_window=model.backbone.num_masked)


def _run_cae(model, bgr, samples, mask_generator):
    from mmpretrain.datasets.transforms import BEiTMaskGenerator
    if mask_generator is None:  # the official block masking (min 16 patches per block)
        mask_generator = BEiTMaskGenerator(input_size=model.backbone.grid_hw,
                                           num_masking_patches=model.neck.mask_token_num,
                                           min_num_patches=16)
    for sample in samples:  # the data pipeline's job in training
        sample.set_mask(torch.from_numpy(mask_generator(dict())['mask']))
    pre = model.data_preprocessor
    # the pixel configs' second view is the same crop at the same size (second_size == size)
    data = pre(dict(inputs=[bgr, bgr], data_samples=samples))
    momentum = model.momentum
    model.momentum = 1.  # CAE.loss updates the teacher: 1 * teacher + 0 * student keeps it
    try:
        with _recording(model.head, 'loss') as calls:
            losses = model.loss(data['inputs'], data['data_samples'])
    finally:
        model.momentum = momentum
    args = calls[0]  # CAE.loss: head.loss(logits, logits_target, latent_pred, latent_target, mask)
    target, mask = args['logits_target'], args['mask']
    pred = torch.zeros_like(target)
    pred[mask] = args['logits'].view(-1, target.shape[-1]).to(pred.dtype)  # row-major order
    return dict(losses=losses, pred=pred, target=target, known=torch.ones_like(mask), mask=mask,
                ref=data['inputs'][1], norm_pix=model.target_generator.norm_pix,
                mean=pre.second_mean, std=pre.second_std)


@torch.no_grad()
def reconstruct(model, images, seed=0, mask_generator=None):
    """Panels of a built (and loaded) LoMaR, MAE or pixel-target CAE model for a batch of images.

    Args:
        model: the pretraining algorithm (:func:`build_pretraining_model`).
        images: (B, H, W, 3) or (H, W, 3) uint8 RGB, at the model's input size.
        seed: seeds the masking (torch and numpy); the caller's RNG state is kept.
        mask_generator: CAE only: the data pipeline's mask transform (``BEiTMaskGenerator``);
            default: the official block masking of ``model.neck.mask_token_num`` patches.

    The model runs in eval mode (no drop path): the panels show its deterministic prediction.
    """
    method = _method(model)
    images = np.asarray(images)
    images = images[None] if images.ndim == 3 else images
    backbone = model.backbone
    p, (h, w) = backbone.patch_size, backbone.grid_hw
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (h * p, w * p, 3):
        raise VisualizationError(
            f'images must be uint8 RGB of {h * p}x{w * p} (this model\'s input), got '
            f'{images.dtype} {images.shape}: resize and centre-crop them')
    device = next(model.parameters()).device
    # the preprocessor gets what mmcv's LoadImageFromFile gives it: BGR, converted if to_rgb
    bgr = torch.from_numpy(np.ascontiguousarray(images[..., ::-1])).permute(0, 3, 1, 2)
    from mmpretrain.structures import DataSample
    samples = [DataSample() for _ in images]
    training = model.training
    model.eval()
    try:
        with _seeded(seed, device):
            if method == 'cae':
                out = _run_cae(model, bgr, samples, mask_generator)
            else:
                out = (_run_lomar if method == 'lomar' else _run_mae)(model, bgr, samples)
    finally:
        model.train(training)

    def pixels(patches):
        img = to_pixels(patches.float(), out['ref'].float(), out['norm_pix'], out['mean'],
                        out['std'], p, (h, w))
        return img if model.data_preprocessor._channel_conversion else img[..., ::-1]

    def per_pixel(patch_mask):
        grid = patch_mask.view(-1, h, w).cpu().numpy()
        return grid.repeat(p, 1).repeat(p, 2)[..., None]

    mask_px = per_pixel(out['mask'])
    masked = np.where(mask_px, np.uint8(GREY), images)
    windows = out.get('windows')
    if windows is not None:
        k = out['window_patches'] * p
        for i, corners in enumerate(windows):
            for j, (r, c) in enumerate(corners * p):  # a 1-pixel outline inside the window
                colour = WINDOW_COLOURS[j % len(WINDOW_COLOURS)]
                masked[i, r:r + k, [c, c + k - 1]] = colour
                masked[i, [r, r + k - 1], c:c + k] = colour
    return Reconstruction(
        method=method, input=images.copy(), masked=masked,
        reconstruction=np.where(mask_px, pixels(out['pred']), images),
        target=np.where(per_pixel(out['known']), pixels(out['target']), np.uint8(GREY)),
        mask=out['mask'].view(-1, h, w).cpu().numpy(), patch_size=p,
        losses={k: float(v) for k, v in out['losses'].items()}, windows=windows,
        window_patches=out.get('window_patches'), masked_per_window=out.get('masked_per_window'))


# -------------------------------------------------------------------------------------- pictures

def _put_title(grid, text, x, width):
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    while scale > 0.2 and cv2.getTextSize(text, font, scale, 1)[0][0] > width - 2:
        scale -= 0.05  # shrink to fit narrow panels
    tw = cv2.getTextSize(text, font, scale, 1)[0][0]
    cv2.putText(grid, text, (x + max(0, (width - tw) // 2), TITLE_HEIGHT - 5), font, scale,
                (0, 0, 0), 1, cv2.LINE_AA)


def compose_grid(panels, titles=None, scale=1):
    """HxWx3 uint8 panels side by side, ``GAP`` white pixels apart, under a ``TITLE_HEIGHT``
    strip of titles (if given); each panel enlarged ``scale`` times (nearest: patch edges stay
    sharp). Returns the RGB grid."""
    panels = [np.asarray(p).repeat(scale, 0).repeat(scale, 1) for p in panels]
    h, w = panels[0].shape[:2]
    top = TITLE_HEIGHT if titles else 0
    grid = np.full((top + h, len(panels) * (w + GAP) - GAP, 3), 255, np.uint8)
    for i, panel in enumerate(panels):
        grid[top:, i * (w + GAP):i * (w + GAP) + w] = panel
        if titles:
            _put_title(grid, titles[i], i * (w + GAP), w)
    return grid


def picture_path(out_dir, image_path, written):
    """``out_dir/<image stem>.png``, numbered when two images share a stem (two folders)."""
    stem = osp.splitext(osp.basename(image_path))[0]
    out = osp.join(out_dir, f'{stem}.png')
    return osp.join(out_dir, f'{stem}_{len(written)}.png') if out in written else out


def save_grid(path, panels, titles=TITLES, scale=1):
    """Write :func:`compose_grid` as a PNG (folders created); returns the grid."""
    grid = compose_grid(panels, titles, scale)
    ok, png = cv2.imencode('.png', np.ascontiguousarray(grid[..., ::-1]))
    if not ok:
        raise VisualizationError(f'cannot encode {path} as PNG')
    try:
        atomic_write(path, png.tobytes())
    except WriteError as e:
        raise VisualizationError(str(e)) from e
    return grid
