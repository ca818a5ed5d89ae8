"""The transfer benchmark: methods x stages, each stage a normal config run in its own folder.

``tools/benchmark.py`` is the command line; this module holds the stage table, the published
reference numbers, and the result collection (tables, CSV/JSON, plots) so that tests can use them.

A stage is complete when its folder holds ``result.json`` (written last, atomically); a stage
with checkpoints but no result is resumed; finished stages are never re-run.
"""
import csv
import json
from pathlib import Path

METHODS = ('lomar', 'mae', 'cae')
# 'scratch': the MAE-shaped backbone from random initialisation, a no-pretraining baseline
BASELINES = ('scratch', )
STAGES = ('pretrain', 'coco', 'ade', 'finetune', 'linear', 'maect')
DEFAULT_STAGES = ('pretrain', 'coco', 'ade')

# stage -> (config file name per profile, metrics reported, GPUs of the paper recipe)
_PAPER_PRETRAIN = {
    'lomar': 'lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
    'mae': 'mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
    'cae': 'cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py',
}
STAGE_CONFIGS = {
    'pretrain': dict(synthetic='{m}_vit-tiny-p8_synthetic.py', paper=_PAPER_PRETRAIN, gpus=8,
                     metrics=()),
    'coco': dict(synthetic='mask-rcnn_vit-tiny-p8_synthetic-coco.py',
                 paper='mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py', gpus=16,
                 metrics=('coco/bbox_mAP', 'coco/segm_mAP')),
    'ade': dict(synthetic='upernet_vit-tiny-p8_synthetic-ade20k.py',
                paper='upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py', gpus=8,
                metrics=('mIoU', )),
    'finetune': dict(synthetic='vit-tiny-p8_finetune_synthetic-imagenet.py',
                     paper='vit-base-p16_8xb128-coslr-100e_in1k.py', gpus=8,
                     metrics=('accuracy/top1', )),
    'linear': dict(synthetic='vit-tiny-p8_linear_synthetic-imagenet.py',
                   paper='vit-base-p16_8xb2048-linear-coslr-90e_in1k.py', gpus=8,
                   metrics=('accuracy/top1', )),
    # MAE-CT tuning (configs/maect/), then frozen-feature evaluation (tools/feature_eval.py with
    # the method's linear-probe config) of the pretrained and of the tuned backbone
    'maect': dict(synthetic='maect-{m}_vit-tiny-p8_synthetic.py',
                  paper='maect-{m}_vit-base-p16_8xb128-coslr-40e_in1k.py', gpus=8,
                  metrics=('knn/top1', 'linear/top1', 'lowshot1/top1', 'cluster/acc')),
}
# Table columns: (stage, metric key, header, scale to the usual percent/AP x 100 convention)
COLUMNS = (
    ('coco', 'coco/bbox_mAP', 'APbox', 100.),
    ('coco', 'coco/segm_mAP', 'APmask', 100.),
    ('ade', 'mIoU', 'mIoU', 1.),
    ('finetune', 'accuracy/top1', 'top-1 ft', 1.),
    ('linear', 'accuracy/top1', 'top-1 lin', 1.),
    ('maect', 'knn/top1', 'k-NN (CT)', 1.),
    ('maect', 'linear/top1', 'feat. lin. (CT)', 1.),
    ('maect', 'lowshot1/top1', '1-shot (CT)', 1.),
    ('maect', 'cluster/acc', 'cluster (CT)', 1.),
)

# Published ViT-B/16 results of the full recipes, in the units of COLUMNS. Sources: the papers,
# as collected in the suite's method notes (shared/docs/methods.md): MAE (He et al., CVPR 2022,
# arXiv 2111.06377; COCO ViTDet-style), LoMaR (Chen et al., arXiv 2206.00790: 84.1 IN-1K top-1;
# its COCO/ADE numbers are given relative to MAE only, so they are left out), CAE (Chen et al.,
# IJCV 2023, arXiv 2202.03026). Missing entries are not published for ViT-B in those sources.
REFERENCES = {
    'lomar': {'top-1 ft': 84.1},
    'mae': {'APbox': 50.3, 'APmask': 44.9, 'mIoU': 48.1, 'top-1 ft': 83.6,
            # MAE-CT ViT-B/16 (released checkpoint, github.com/ml-jku/MAE-CT): k-NN, probe
            'k-NN (CT)': 64.1, 'feat. lin. (CT)': 73.5},
    'cae': {'APbox': 50.3, 'APmask': 44.2, 'mIoU': 50.3},
}
REFERENCE_SOURCE = ('published ViT-B/16, 1600-epoch pretraining, full recipes (MAE arXiv '
                    '2111.06377, LoMaR arXiv 2206.00790, CAE arXiv 2202.03026, MAE-CT arXiv '
                    '2304.10520)')


def config_path(repo, profile, method, stage):
    """Config of one stage; 'scratch' uses MAE's configs with no pretrained weights."""
    spec = STAGE_CONFIGS[stage][profile]
    cfg_method = 'mae' if method == 'scratch' else method
    name = spec[cfg_method] if isinstance(spec, dict) else spec.format(m=cfg_method)
    return Path(repo) / 'configs' / ('maect' if stage == 'maect' else cfg_method) / name


def write_json_atomic(path, obj):
    """Write JSON through a temporary file and a rename: a kill never leaves half a file."""
    from .engine.checkpoint_hook import atomic_write
    atomic_write(path, json.dumps(obj, indent=1))


def read_result(stage_dir):
    path = Path(stage_dir) / 'result.json'
    return json.loads(path.read_text()) if path.exists() else None


def loss_curve(stage_dir):
    """(iteration, loss) of a stage's training, over all its runs (a resumed run continues the
    iterations of the interrupted one; later runs win on repeated iterations)."""
    points = {}
    for scalars in sorted(Path(stage_dir).glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if 'loss' in row and 'iter' in row:
                points[row['iter']] = row['loss']
    return sorted(points.items())


def collect(work_dir, methods, stages):
    """One row per method: the metrics (table units) and the stage results as stored."""
    rows = []
    for method in methods:
        row = dict(method=method, metrics={}, stages={})
        for stage in stages:
            result = read_result(Path(work_dir) / method / stage)
            if result is None:
                continue
            row['stages'][stage] = result
            for col_stage, key, header, scale in COLUMNS:
                if col_stage == stage and key in result.get('metrics', {}):
                    row['metrics'][header] = result['metrics'][key] * scale
                if col_stage == stage and key in result.get('untrained', {}):
                    row['metrics'][header + ' (untrained)'] = result['untrained'][key] * scale
        rows.append(row)
    return rows


def _fmt(v):
    return '-' if v is None else f'{v:.1f}'


def write_results(work_dir, rows, stages, profile):
    """results.{md,csv,json} in work_dir; returns the Markdown table."""
    work_dir = Path(work_dir)
    headers = [h for s, _, h, _ in COLUMNS if s in stages]
    md = [f'Transfer results ({profile} profile). Metrics: COCO AP x 100 (CocoMetric), '
          'ADE20K mIoU (IoUMetric), ImageNet top-1 (Accuracy), MAE-CT (CT) frozen-feature '
          'k-NN / linear / 1-shot / clustering accuracy. In brackets: the model before transfer '
          'training (pretrained backbone, untrained heads), for CT the backbone before tuning.',
          '']
    cols = ['method'] + headers + (['pretrain loss (first -> last)'] if 'pretrain' in stages
                                   else []) + ['time']
    md += ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    csv_rows = []
    for row in rows:
        cells = [row['method']]
        flat = dict(method=row['method'])
        for h in headers:
            v, u = row['metrics'].get(h), row['metrics'].get(h + ' (untrained)')
            cells.append(_fmt(v) + (f' ({_fmt(u)})' if u is not None else ''))
            flat[h], flat[h + ' untrained'] = v, u
        if 'pretrain' in stages:
            pre = row['stages'].get('pretrain', {})
            losses = pre.get('losses')
            cells.append(f'{losses[0]:.3f} -> {losses[1]:.3f}' if losses else '-')
            flat['pretrain loss first'], flat['pretrain loss last'] = losses or (None, None)
        secs = sum(s.get('seconds', 0) for s in row['stages'].values())
        cells.append(f'{secs / 60:.1f} min')
        flat['seconds'] = round(secs, 1)
        md.append('| ' + ' | '.join(cells) + ' |')
        csv_rows.append(flat)
    # the published numbers, always shown and labelled as such
    md += ['', f'Reference ({REFERENCE_SOURCE}); the synthetic profile trains tiny models '
           'on toy data, so only the paper profile is comparable:', '',
           '| method | ' + ' | '.join(headers) + ' |', '|' + '---|' * (len(headers) + 1)]
    for method, ref in REFERENCES.items():
        md.append(f'| {method} (paper) | ' + ' | '.join(_fmt(ref.get(h)) for h in headers)
                  + ' |')
    text = '\n'.join(md) + '\n'
    (work_dir / 'results.md').write_text(text)
    with open(work_dir / 'results.csv', 'w', newline='') as f:
        fields = list(dict.fromkeys(k for r in csv_rows for k in r))
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows)
    write_json_atomic(work_dir / 'results.json', dict(
        profile=profile, stages=list(stages), rows=rows, references=REFERENCES,
        reference_source=REFERENCE_SOURCE))
    return text


def plot_results(work_dir, rows, stages):
    """loss_curves.png (one panel per stage, one line per method) and metrics.png (bars per
    method with the published references beside them). Returns the written paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    work_dir = Path(work_dir)
    written = []
    curves = {(r['method'], s): loss_curve(work_dir / r['method'] / s) for r in rows
              for s in stages}
    trained = [s for s in stages if any(curves[r['method'], s] for r in rows)]
    if trained:
        fig, axes = plt.subplots(1, len(trained), figsize=(4.2 * len(trained), 3.4),
                                 squeeze=False)
        for ax, stage in zip(axes[0], trained):
            for row in rows:
                curve = curves[row['method'], stage]
                if curve:
                    ax.plot(*zip(*curve), label=row['method'])
            ax.set(title=f'{stage} training loss', xlabel='iteration', ylabel='loss')
            ax.grid(alpha=.3)
        axes[0][0].legend()
        fig.tight_layout()
        fig.savefig(work_dir / 'loss_curves.png', dpi=110)
        plt.close(fig)
        written.append(work_dir / 'loss_curves.png')
    headers = [h for s, _, h, _ in COLUMNS if s in stages
               and any(h in r['metrics'] for r in rows)]
    if headers:
        fig, axes = plt.subplots(1, len(headers), figsize=(3.6 * len(headers), 3.4),
                                 squeeze=False)
        for ax, h in zip(axes[0], headers):
            names = [r['method'] for r in rows]
            ours = [r['metrics'].get(h, 0.) for r in rows]
            base = [r['metrics'].get(h + ' (untrained)', 0.) for r in rows]
            ref = [REFERENCES.get(n, {}).get(h, 0.) for n in names]
            x = range(len(names))
            ax.bar([i - .27 for i in x], ours, .27, label='this run')
            ax.bar(list(x), base, .27, label='untrained')
            ax.bar([i + .27 for i in x], ref, .27, label='paper ViT-B', hatch='//', alpha=.6)
            ax.set_xticks(list(x), names)
            ax.set(title=h)
            ax.grid(axis='y', alpha=.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(work_dir / 'metrics.png', dpi=110)
        plt.close(fig)
        written.append(work_dir / 'metrics.png')
    return written
