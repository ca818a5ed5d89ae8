"""The suite on the embedded synthetic data (the README's main command).

1. writes the synthetic mini-COCO / mini-ADE20K / mini-ImageNet under data/synthetic;
2. pretrains LoMaR, MAE and CAE (pixel targets) on the mini-ImageNet with the CPU-sized
   configs (tools/train.py) and reports their reconstruction losses;
3. smoke-tests the transfer wiring: our ViT through each OpenMMLab project's Runner (mmpretrain
   classification, mmdet Mask R-CNN, mmseg FCN) for a few iterations, each checkpoint evaluated
   with tools/test.py (stock Accuracy, CocoMetric, IoUMetric).

Step 3's models are tiny and barely trained: it checks that registry, data, training,
checkpoints and evaluators work together, not how well a backbone transfers.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRETRAIN = {  # method: CPU-sized pretraining config
    'LoMaR': 'configs/lomar/lomar_vit-tiny-p8_synthetic.py',
    'MAE': 'configs/mae/mae_vit-tiny-p8_synthetic.py',
    'CAE (pixel)': 'configs/cae/cae_vit-tiny-p8_synthetic.py',
}
RUNS = [  # (task, config, metrics to show)
    ('ImageNet cls (mmpretrain)', 'configs/smoke/vit-tiny-p16_linear_synthetic-imagenet.py',
     ['accuracy/top1']),
    ('COCO Mask R-CNN (mmdet)', 'configs/smoke/mask-rcnn_vit-tiny-p16_synthetic-coco.py',
     ['coco/bbox_mAP', 'coco/segm_mAP']),
    ('ADE20K FCN (mmseg)', 'configs/smoke/fcn_vit-tiny-p16_synthetic-ade20k.py', ['mIoU']),
]


def run(cmd, log):
    """Run a command, log to file, echo its progress lines."""
    print('$ ' + ' '.join(cmd), flush=True)
    with open(log, 'w') as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        for line in proc.stdout:
            f.write(line)
            # training progress and final metrics; not every evaluation iteration
            if 'Iter(train)' in line or 'Error' in line or (
                    'Iter(' in line and any(k in line for k in ('mAP', 'mIoU', 'accuracy'))):
                print('   ' + line.rstrip()[:160], flush=True)
    if proc.wait():
        sys.exit(f'command failed (exit {proc.returncode}); full log: {log}')


def logged_losses(work_dir):
    """(iteration, loss) pairs of the latest run in an mmengine work_dir."""
    scalars = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))[-1]
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [(r['iter'], r['loss']) for r in rows if 'loss' in r]


def pretrain(py):
    rows = []
    for method, config in PRETRAIN.items():
        # tools/train.py's default work_dir: where the transfer configs look for the checkpoint
        work_dir = REPO / 'work_dirs' / Path(config).stem
        work_dir.mkdir(parents=True, exist_ok=True)
        t = time.time()
        run([py, 'tools/train.py', config], work_dir / 'train.log')
        losses = logged_losses(work_dir)
        ckpt = (work_dir / 'last_checkpoint').read_text().strip()
        rows.append((method, losses, time.time() - t, ckpt))
    print('\nPretraining on the embedded mini-ImageNet (normalised-pixel reconstruction loss; '
          'CAE: pixel + alignment)')
    print(f'| {"method":11s} | {"loss, first -> last logged":40s} | {"time":>6s} | checkpoint')
    print(f'|{"-" * 13}|{"-" * 42}|{"-" * 8}|-----------')
    for method, losses, secs, ckpt in rows:
        (i0, l0), (i1, l1) = losses[0], losses[-1]
        curve = f'{l0:.3f} (iter {i0}) -> {l1:.3f} (iter {i1})'
        print(f'| {method:11s} | {curve:40s} | {secs:5.0f}s | {Path(ckpt).relative_to(REPO)}')


def main():
    t0 = time.time()
    py = sys.executable
    run([py, 'tools/make_synthetic_data.py', '--out', 'data/synthetic'], '/dev/null')
    pretrain(py)
    rows = []
    for task, config, keys in RUNS:
        work_dir = REPO / 'work_dirs' / 'demo' / Path(config).stem
        work_dir.mkdir(parents=True, exist_ok=True)
        t = time.time()
        # no validation while training: tools/test.py evaluates the saved checkpoint
        run([py, 'tools/train.py', config, '--work-dir', str(work_dir), '--cfg-options',
             'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'], work_dir / 'train.log')
        ckpt = (work_dir / 'last_checkpoint').read_text().strip()
        out = work_dir / 'metrics.json'
        run([py, 'tools/test.py', config, ckpt, '--work-dir', str(work_dir), '--out', str(out)],
            work_dir / 'test.log')
        metrics = json.loads(out.read_text())
        rows.append((task, config, {k: metrics[k] for k in keys}, time.time() - t))
    print('\nSmoke run on the embedded synthetic data (tiny ViT, 4 iterations: wiring check, not '
          'transfer quality)')
    print(f'| {"task":27s} | {"metrics":44s} | {"time":>6s} | config')
    print(f'|{"-" * 29}|{"-" * 46}|{"-" * 8}|-------')
    for task, config, metrics, secs in rows:
        shown = ', '.join(f'{k}={v:.3f}' for k, v in metrics.items())
        print(f'| {task:27s} | {shown:44s} | {secs:5.0f}s | {config}')
    print(f'\nall done in {time.time() - t0:.0f}s; logs and checkpoints under work_dirs/')


if __name__ == '__main__':
    main()
