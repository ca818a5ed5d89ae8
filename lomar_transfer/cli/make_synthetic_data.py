"""Write the embedded synthetic datasets (mini-COCO, mini-ADE20K, mini-ImageNet).

    lomar-make-data [--out data/synthetic] [--seed 0]

Layout under --out: coco/ (annotations/instances_{train,val}2017.json, {train,val}2017/),
ade/ADEChallengeData2016/ and imagenet/ (train/, val/, meta/). Re-running with the same settings
is a no-op; existing data made with other settings is only replaced with --overwrite.
"""
import argparse
import time
from pathlib import Path

from lomar_transfer.datasets.synthetic import make_all


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/synthetic', help='output root')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--coco', type=int, nargs=2, default=(64, 16), metavar=('TRAIN', 'VAL'),
                        help='number of COCO train/val images')
    parser.add_argument('--ade', type=int, nargs=2, default=(64, 16), metavar=('TRAIN', 'VAL'),
                        help='number of ADE20K train/val images')
    parser.add_argument('--imagenet', type=int, nargs=2, default=(20, 5),
                        metavar=('TRAIN', 'VAL'), help='ImageNet images per class (10 classes)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace synthetic data made with other settings')
    args = parser.parse_args()
    t0 = time.time()
    sizes = dict(coco=dict(num_train=args.coco[0], num_val=args.coco[1]),
                 ade20k=dict(num_train=args.ade[0], num_val=args.ade[1]),
                 imagenet=dict(num_train_per_class=args.imagenet[0],
                               num_val_per_class=args.imagenet[1]))
    roots = make_all(args.out, args.seed, args.overwrite, **sizes)
    for name, root in roots.items():
        print(f'{name:9s} -> {root}')
    print(f'synthetic data ready in {time.time() - t0:.1f}s (seed {args.seed})')
    if Path(args.out).resolve() != Path('data/synthetic').resolve():  # not the configs' default
        print(f'the synthetic configs read it with LOMAR_DATA_ROOT={args.out} (e.g. '
              f'LOMAR_DATA_ROOT={args.out} lomar-train CONFIG), the suite with '
              f'lomar-benchmark --data-root {args.out}')


if __name__ == '__main__':
    main()
