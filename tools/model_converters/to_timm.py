"""Export a backbone of this suite (or any supported ViT checkpoint) as a timm ``vit_*`` state
dict and print what happened.

    python tools/model_converters/to_timm.py SRC DST [--img-size 224] [--drop-rel-pos]

Load it with ``timm.create_model('vit_base_patch16_224', pretrained=False).load_state_dict(
torch.load(DST))`` (``class_token=False`` / ``init_values`` for backbones without class token /
with LayerScale). LoMaR's relative position tables have no timm counterpart: refused unless
``--drop-rel-pos``.
"""
import argparse
import io
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

import torch  # noqa: E402

from lomar_transfer.checkpoint import load_local_checkpoint  # noqa: E402
from lomar_transfer.engine.checkpoint_hook import atomic_write  # noqa: E402
from lomar_transfer.converters import convert_to_timm  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--img-size', type=int, default=224,
                   help='input size the exported position embedding is made for')
    p.add_argument('--drop-rel-pos', action='store_true')
    args = p.parse_args()
    try:
        sd, dropped = convert_to_timm(load_local_checkpoint(args.src), args.img_size,
                                      args.drop_rel_pos)
    except ValueError as e:
        raise SystemExit(f'{args.src}: {e}')
    pos = tuple(sd['pos_embed'].shape) if 'pos_embed' in sd else None
    print(f'exported {len(sd)} tensors (class token: {"cls_token" in sd}, LayerScale: '
          f'{any(k.endswith("ls1.gamma") for k in sd)}, pos_embed: {pos}); dropped '
          f'{len(dropped)} keys{": " + ", ".join(dropped[:8]) if dropped else ""}'
          f'{" ..." if len(dropped) > 8 else ""}')
    buf = io.BytesIO()
    torch.save(sd, buf)
    atomic_write(args.dst, buf.getvalue())  # never a half-written DST
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()
