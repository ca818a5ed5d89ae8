"""Reconstruction pictures of a LoMaR / MAE / CAE (pixel targets) pretraining checkpoint.

    lomar-visualize-reconstruction CONFIG CHECKPOINT [--images IMG ... | --num N]
        [--out-dir DIR] [--seed S] [--device DEV] [--scale K] [--cfg-options ...]
    (python tools/visualize_reconstruction.py ... in a clone of the repository)

One PNG per image, four panels: input | masked input (LoMaR: its windows outlined) |
reconstruction (predictions at the masked patches, the input elsewhere) | target (what the loss
compares to), see lomar_transfer/visualization/reconstruction.py. Images (``--images``, or ``--num``
spread over the config's train dataset, default 4) are resized (shorter side, bicubic) and
centre-cropped to the model's input size. Output: work_dirs/<config name>/reconstruction. The same
``--seed`` gives the same masks, on every image.
"""
import argparse
import copy
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config, DictAction

from ..visualization.reconstruction import (VisualizationError, build_pretraining_model,
                                            load_pretraining_checkpoint, picture_path, reconstruct,
                                            save_grid)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Reconstruction pictures of a pretraining '
                                     'checkpoint (LoMaR, MAE, CAE with pixel targets)')
    parser.add_argument('config', help='the pretraining config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='a checkpoint written by tools/train.py')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--images', nargs='+', metavar='PATH', help='image files')
    which.add_argument('--num', type=int, default=4,
                       help="images spread over the config's train dataset (default 4)")
    parser.add_argument('--out-dir', help='default: work_dirs/<config name>/reconstruction')
    parser.add_argument('--seed', type=int, default=0, help='seeds the masking (default 0)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--scale', type=int, default=1,
                        help='enlarge the panels this many times (nearest neighbour)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.backbone.window_sampling=official')
    return parser.parse_args(argv)


def dataset_images(cfg, num):
    """``num`` image paths spread evenly over the config's train dataset (several classes)."""
    from mmengine.registry import DATASETS
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset_cfg.pipeline = []  # only the file list is needed
    try:
        dataset = DATASETS.build(dataset_cfg)
        picks = np.linspace(0, len(dataset) - 1, min(num, len(dataset))).round().astype(int)
        return [dataset.get_data_info(int(i))['img_path'] for i in picks]
    except (OSError, ValueError, KeyError, AssertionError, RuntimeError) as e:
        why = (str(e).strip().splitlines() or [''])[0][:200]
        raise VisualizationError(
            f"cannot list the images of the config's train dataset ({type(e).__name__}: {why}); "
            'pass --images, or make the embedded data: python tools/make_synthetic_data.py '
            '--out data/synthetic') from e


def load_images(paths, size):
    """RGB uint8 (size, size, 3) per path: shorter side resized (bicubic, as the train
    pipelines), centre-cropped."""
    from mmcv.transforms import CenterCrop, Compose, LoadImageFromFile
    from mmpretrain.datasets.transforms import ResizeEdge
    pipeline = Compose([LoadImageFromFile(),
                        ResizeEdge(scale=size, edge='short', backend='pillow',
                                   interpolation='bicubic'),
                        CenterCrop(crop_size=size)])
    images = []
    for path in paths:
        try:
            images.append(pipeline(dict(img_path=path))['img'][..., ::-1])  # mmcv reads BGR
        except (OSError, ValueError, TypeError, AttributeError, AssertionError) as e:
            raise VisualizationError(f'cannot read image {path} ({type(e).__name__}: {e}); '
                                     'pass image files (JPEG, PNG)') from e
    return images


def config_mask_generator(cfg):
    """The train pipeline's mask transform (CAE), or None."""
    from mmengine.registry import TRANSFORMS
    for step in cfg.train_dataloader.dataset.get('pipeline', []):
        if str(step.get('type', '')).split('.')[-1] == 'BEiTMaskGenerator':
            return TRANSFORMS.build(step)
    return None


def run(args):
    if not osp.isfile(args.config):
        raise VisualizationError(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    from ..utils import check_cfg_options
    check_cfg_options(cfg, args.cfg_options)
    cfg.merge_from_dict(args.cfg_options)
    if args.scale < 1 or args.num < 1:
        raise VisualizationError('--scale and --num must be 1 or more')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise VisualizationError(f'--device {args.device}: no CUDA GPU here; pass --device cpu')
    model = build_pretraining_model(cfg)  # refuses non-pretraining and DALL-E-target configs
    paths = args.images or dataset_images(cfg, args.num)
    images = load_images(paths, model.backbone.grid_hw[0] * model.backbone.patch_size)
    load_pretraining_checkpoint(model, args.checkpoint)
    model.to(args.device).eval()
    mask_generator = config_mask_generator(cfg)
    name = osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out_dir or osp.join('work_dirs', name, 'reconstruction')
    written = []
    for path, image in zip(paths, images):
        # one image at a time: its picture depends on the seed only, not on the other images
        rec = reconstruct(model, image, seed=args.seed, mask_generator=mask_generator)
        out = picture_path(out_dir, path, written)
        save_grid(out, rec.panels(0), rec.titles(0), scale=args.scale)
        written.append(out)
        print(f'{out}  {rec.describe(0)}')
    return written


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except VisualizationError as e:
        raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
    main()
