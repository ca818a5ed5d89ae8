"""Convert a ViT checkpoint to this suite's backbone format and print what happened.

    lomar-convert SRC DST [--source auto|<a source of lomar_transfer/sources>|mmpretrain|...]
    (python tools/model_converters/to_lomar_vit.py ... in a clone of the repository)

SRC: the release file of any declared source (LoMaR, MAE, CAE, timm, DeiT, MoCo v3, DINO, iBOT,
BEiT: ``lomar_transfer/sources``), mmpretrain backbones or algorithm checkpoints, or ours. DST
holds ``{'state_dict': backbone weights, 'meta': {...}}`` in our names
(``layers.N.norm1.weight``, ...) and loads with ``model.backbone.pretrained=DST`` (the loader
would also convert SRC on the fly). Checkpoints of ours written before format 3
(``blocks.N.*``) are migrated, and the output says so. ``--source`` forces a format where
detection cannot tell (e.g. official CAE weights without layer scale look like timm's); one that
the checkpoint contradicts (``--source cae`` on a file with a fused ``qkv.bias``) is refused.
"""
import argparse
import io
import os


import torch

from ..fileio import CheckpointError, atomic_write, read_checkpoint
from ..models.backbones.converters import (CONVERTERS, WRITER, convert_to_lomar_vit,
                                           describe_migration, detect_source, legacy_format)
from ..errors import one_line_errors


@one_line_errors()
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--source', default='auto', choices=['auto', *CONVERTERS])
    args = p.parse_args(argv)
    ckpt = read_checkpoint(args.src)
    try:
        source = detect_source(ckpt) if args.source == 'auto' else args.source
        sd, dropped = convert_to_lomar_vit(ckpt, source)  # refuses a --source it contradicts
    except ValueError as e:
        raise CheckpointError(args.src, str(e))
    if not any(k.startswith('layers.') for k in sd):
        raise CheckpointError(args.src, f'no ViT block weights after conversion from {source!r};'
                              ' is it a ViT checkpoint? (try --source)')
    depth = len({k.split('.')[1] for k in sd if k.startswith('layers.')})
    print(f'source: {source}; converted {len(sd)} tensors ({depth} blocks, width '
          f'{sd["patch_embed.proj.weight"].shape[0]}); dropped {len(dropped)} non-backbone '
          f'keys{": " + ", ".join(dropped[:8]) if dropped else ""}'
          f'{" ..." if len(dropped) > 8 else ""}')
    old = legacy_format(ckpt, source)
    if old:
        print(f'migrated: {describe_migration(old)}')
    buf = io.BytesIO()
    # writer: the weights keep their lomar_transfer format versions (upgraded when loaded)
    meta = dict(converted_from=os.path.abspath(args.src), source=source, writer=WRITER)
    torch.save({'state_dict': sd, 'meta': meta}, buf)
    atomic_write(args.dst, buf.getvalue())  # never a half-written DST
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()
