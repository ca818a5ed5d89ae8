"""Export a backbone of this suite (or any supported ViT checkpoint) as a timm state dict
(``vit_*``, or ``beit_*`` for relative position bias tables) and print what happened.

    lomar-export-timm SRC DST [--img-size 224] [--drop-rel-pos]
    (python tools/model_converters/to_timm.py ... in a clone of the repository)

Load it into the timm model printed with its options:
``timm.models.vision_transformer.VisionTransformer(**options, num_heads=...)`` (e.g.
``class_token=False, global_pool='avg', fc_norm=False`` for a backbone without class token,
which timm holds exactly; ``init_values`` with LayerScale), or, for a backbone with BEiT/CAE
relative position bias tables (``rel_pos_bias=True``, e.g. CAE fine-tuning),
``timm.models.beit.Beit(**options)`` (its tables, q/v biases and layer scales; ``--img-size``
must be the size the tables were made for). LoMaR's relative position tables and ViTDet's
decomposed ones have no timm counterpart: refused unless ``--drop-rel-pos``. A checkpoint that
is not a ViT, or one that no timm model computes exactly, is refused.
"""
import argparse
import io


import torch

from ..fileio import CheckpointError, atomic_write, read_checkpoint
from ..models.backbones.converters import convert_to_timm, timm_model_class, timm_model_kwargs
from ..errors import one_line_errors


@one_line_errors()
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--img-size', type=int, default=224,
                   help='input size the exported position embedding is made for (with BEiT/CAE '
                   'relative position bias tables: the size they were made for)')
    p.add_argument('--drop-rel-pos', action='store_true',
                   help="export without LoMaR's or ViTDet's relative position tables, which "
                   'timm has no place for')
    args = p.parse_args(argv)
    try:
        sd, dropped = convert_to_timm(read_checkpoint(args.src), args.img_size,
                                      args.drop_rel_pos)
    except ValueError as e:  # not a ViT, tables without --drop-rel-pos, no Beit fits
        raise CheckpointError(args.src, str(e))
    pos = tuple(sd['pos_embed'].shape) if 'pos_embed' in sd else None
    tables = sum(k.endswith('relative_position_bias_table') for k in sd)
    print(f'exported {len(sd)} tensors (class token: {"cls_token" in sd}, LayerScale: '
          f'{any(k.endswith(("ls1.gamma", "gamma_1")) for k in sd)}, pos_embed: {pos}'
          f'{f", relative position bias tables: {tables}" if tables else ""}); dropped '
          f'{len(dropped)} keys{": " + ", ".join(dropped[:8]) if dropped else ""}'
          f'{" ..." if len(dropped) > 8 else ""}')
    options = ', '.join(f'{k}={v!r}' for k, v in timm_model_kwargs(sd, args.img_size).items())
    if timm_model_class(sd) == 'Beit':
        print(f'timm: Beit({options}) (timm.models.beit.Beit)')
    else:
        print(f'timm: VisionTransformer({options}, num_heads=<the source model\'s>)')
    buf = io.BytesIO()
    torch.save(sd, buf)
    atomic_write(args.dst, buf.getvalue())  # never a half-written DST
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()
