"""Attention maps of a ViT's last block over images: a release of any source, or a config's
backbone with a checkpoint.

    lomar-visualize-attention SOURCE|CONFIG CHECKPOINT [--images IMG ... | --num N]
        [--patch ROW COL] [--img-size S] [--num-heads H] [--out-dir DIR] [--scale K]
    (python tools/visualize_attention.py ... in a clone of the repository)

SOURCE: a name of lomar_transfer/sources (dino, mocov3, beit, cae, ...): the model is our ViT
with that source's preset, sized from the file (heads from the width unless --num-heads).
CONFIG: its model's backbone (a transfer or pretraining config), with CHECKPOINT as its
weights (any format the loader takes; a whole-model checkpoint of ours too).
One PNG per image: input | mean over heads | each head. With a class token, its attention to the
patches (DINO's figure); without, or with --patch, that patch's (CAE's figure; default the
centre patch). Images (``--images``, or ``--num`` from a config's train dataset) are resized
(shorter side) and centre-cropped to the input size. Output: work_dirs/attention/<name>.
"""
import argparse
import copy
import os.path as osp

from mmengine.config import Config

from ..errors import one_line_errors
from ..models.backbones.pretrained import load_pretrained_backbone
from ..visualization.attention import attention_maps, save_attention_grid, source_backbone
from ..visualization.reconstruction import VisualizationError, picture_path
from .visualize_reconstruction import dataset_images, load_images


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='a source name (dino, mocov3, ...) or a config file')
    parser.add_argument('checkpoint')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--images', nargs='+', metavar='PATH', help='image files')
    which.add_argument('--num', type=int, default=4,
                       help="with a config: images spread over its train dataset (default 4)")
    parser.add_argument('--patch', nargs=2, type=int, metavar=('ROW', 'COL'),
                        help='draw this patch\'s attention instead of the class token\'s')
    parser.add_argument('--img-size', type=int, default=224,
                        help='with a source: the input size (default 224)')
    parser.add_argument('--num-heads', type=int, help='with a source: heads (default: from the '
                        'width, as timm / mmpretrain size them)')
    parser.add_argument('--out-dir', help='default: work_dirs/attention/<source or config>')
    parser.add_argument('--scale', type=int, default=1,
                        help='enlarge the panels this many times (nearest neighbour)')
    return parser.parse_args(argv)


def config_backbone(path, checkpoint):
    from ..registry import MODELS
    cfg = Config.fromfile(path)
    backbone = copy.deepcopy(cfg.model.backbone)
    backbone.pop('pretrained', None)
    backbone['init_cfg'] = None
    model = MODELS.build(backbone)
    load_pretrained_backbone(model, checkpoint)  # as init_cfg=Pretrained (without the dump)
    return model, cfg


def run(args):
    if args.scale < 1 or args.num < 1:
        raise VisualizationError('--scale and --num must be 1 or more')
    if args.model.endswith('.py'):
        if not osp.isfile(args.model):
            raise VisualizationError(f'config file not found: {args.model}')
        model, cfg = config_backbone(args.model, args.checkpoint)
        paths = args.images or dataset_images(cfg, args.num)
    else:
        if not args.images:
            raise VisualizationError(f'{args.model}: pass --images (a source has no dataset)')
        model, paths = source_backbone(args.model, args.checkpoint, args.img_size,
                                       args.num_heads), args.images
    model.eval()
    name = osp.splitext(osp.basename(args.model))[0]
    out_dir = args.out_dir or osp.join('work_dirs', 'attention', name)
    size = model.grid_hw[0] * model.patch_embed.patch_size[0]
    written = []
    for path, image in zip(paths, load_images(paths, size)):
        result = attention_maps(model, image, tuple(args.patch) if args.patch else None)
        out = picture_path(out_dir, path, written)
        save_attention_grid(out, image, result, model.patch_embed.patch_size, args.scale)
        written.append(out)
        print(f'{out}  {result.describe()}')
    return written


@one_line_errors()
def main(argv=None):
    try:
        return run(parse_args(argv))
    except VisualizationError as e:
        raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
    main()
