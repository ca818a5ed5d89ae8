"""Export a backbone of this suite (or any supported ViT checkpoint) as a timm ``vit_*`` state
dict and print what happened.

    lomar-export-timm SRC DST [--img-size 224] [--drop-rel-pos]
    (python tools/model_converters/to_timm.py ... in a clone of the repository)

Load it into ``timm.models.vision_transformer.VisionTransformer(**options, num_heads=...)`` with
the options printed (e.g. ``class_token=False, global_pool='avg', fc_norm=False`` for a backbone
without class token, which timm holds exactly; ``init_values`` with LayerScale). LoMaR's
relative position tables have no timm counterpart: refused unless ``--drop-rel-pos``. A
checkpoint that is not a ViT is refused.
"""
import argparse
import io


import torch

from ..checkpoint import CheckpointError, read_checkpoint
from ..converters import convert_to_timm, timm_model_kwargs
from ..engine.checkpoint_hook import atomic_write
from ..errors import one_line_errors


@one_line_errors()
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--img-size', type=int, default=224,
                   help='input size the exported position embedding is made for')
    p.add_argument('--drop-rel-pos', action='store_true')
    args = p.parse_args(argv)
    try:
        sd, dropped = convert_to_timm(read_checkpoint(args.src), args.img_size,
                                      args.drop_rel_pos)
    except ValueError as e:  # not a ViT, or LoMaR's tables without --drop-rel-pos
        raise CheckpointError(args.src, str(e))
    pos = tuple(sd['pos_embed'].shape) if 'pos_embed' in sd else None
    print(f'exported {len(sd)} tensors (class token: {"cls_token" in sd}, LayerScale: '
          f'{any(k.endswith("ls1.gamma") for k in sd)}, pos_embed: {pos}); dropped '
          f'{len(dropped)} keys{": " + ", ".join(dropped[:8]) if dropped else ""}'
          f'{" ..." if len(dropped) > 8 else ""}')
    options = ', '.join(f'{k}={v!r}' for k, v in timm_model_kwargs(sd, args.img_size).items())
    print(f'timm: VisionTransformer({options}, num_heads=<the source model\'s>)')
    buf = io.BytesIO()
    torch.save(sd, buf)
    atomic_write(args.dst, buf.getvalue())  # never a half-written DST
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()
