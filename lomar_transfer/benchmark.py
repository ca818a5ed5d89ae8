"""The transfer benchmark: methods x stages, each stage a normal config run in its own folder.

``tools/benchmark.py`` is the command line; this module holds the stage table, the published
reference numbers, and the result collection (tables, CSV/JSON, plots) so that tests can use them.

A stage is complete when its folder holds ``result.json`` (written last, atomically); a stage
with checkpoints but no result is resumed; finished stages are never re-run.
"""
import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .fileio import atomic_write
from .sources import SOURCES

# The configs, as the package ships them (OpenMMLab's layout, what ``lomar_transfer::`` reads): a
# link to the repository's configs/ in a clone, a copy in an installed wheel.
CONFIG_ROOT = (Path(__file__).parent / '.mim' / 'configs').resolve()
METHODS = ('lomar', 'mae', 'cae')
# 'scratch': the MAE-shaped backbone from random initialisation, a no-pretraining baseline
BASELINES = ('scratch', )
# sources benchmarked from their released checkpoint (--pretrained NAME=PATH; MoCo v3 is also
# pretrained here, PRETRAINED_HERE): their stage configs are derived, MAE's with the source's
# encoder preset over MAE's
RELEASES = tuple(name for name, source in SOURCES.items()
                 if name not in METHODS and not source.generic)
@dataclass(frozen=True)
class Stage:
    """One stage of the suite, declared once: the runner (``tools/benchmark.py``), the table and
    the plots read everything they do with a stage from here.

    configs: the config file per profile key: ``synthetic``, ``paper``, ``paper_cae`` (the
        stage under CAE's protocol), ``<key>_head`` (a first phase run before the stage's own
        config, in its ``head/`` folder); a name with ``{m}`` or a dict per method.
    gpus: GPUs of the paper recipe (the printed launch plan).
    protocol, protocol_cae: the published protocol the paper config runs (and under CAE's).
    columns: (metric key, table header, scale to the usual percent / AP x 100) of the table.
    folder: the configs' folder under ``configs/``; None: the method's own.
    pretrains: makes the backbone that the other stages start from (they need it first).
    for_scratch: runs for the random-initialisation baseline.
    evaluator: ``'test'`` (tools/test.py on the stage's config, heads included),
        ``'features'`` (tools/feature_eval.py on the backbone alone, with the config of the stage
        ``eval_config``) or ``'reconstruction'`` (pictures of the pretraining task, no metric).
    evaluate_once: no validation while training; evaluated once, after it.
    pictures: the evaluation also draws its predictions (``--show-dir``).
    """
    name: str
    configs: dict
    gpus: int
    protocol: str = ''
    protocol_cae: str = ''
    columns: tuple = ()
    folder: str = None
    pretrains: bool = False
    for_scratch: bool = True
    evaluator: str = 'test'
    eval_config: str = None
    evaluate_once: bool = True
    pictures: bool = False

    @property
    def metrics(self):
        return tuple(key for key, _, _ in self.columns)


_STAGES = (
    Stage('pretrain', gpus=8, pretrains=True, for_scratch=False, evaluator='reconstruction',
          evaluate_once=False, configs=dict(
              synthetic='{m}_vit-tiny-p8_synthetic.py',
              paper={'lomar': 'lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
                     'mae': 'mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
                     'cae': 'cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py',
                     'mocov3': 'mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k.py'})),
    Stage('coco', gpus=16, pictures=True, configs=dict(
              synthetic='mask-rcnn_vit-tiny-p8_synthetic-coco.py',
              paper='mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py',
              paper_cae='mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py'),
          protocol='ViTDet Mask R-CNN, simple pyramid, 100 ep LSJ 1024',
          protocol_cae='CAE Mask R-CNN FPN 4conv1fc, 1x (12 ep), multi-scale',
          columns=(('coco/bbox_mAP', 'APbox', 100.), ('coco/segm_mAP', 'APmask', 100.))),
    Stage('ade', gpus=8, pictures=True, configs=dict(
              synthetic='upernet_vit-tiny-p8_synthetic-ade20k.py',
              paper='upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py',
              paper_cae='upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py'),
          protocol='mmseg/BEiT UperNet 512x512, 160k iterations',
          protocol_cae='CAE UperNet 512x512, 160k iterations',
          columns=(('mIoU', 'mIoU', 1.), )),
    Stage('finetune', gpus=8, configs=dict(
              synthetic='vit-tiny-p8_finetune_synthetic-imagenet.py',
              paper='vit-base-p16_8xb128-coslr-100e_in1k.py'),
          protocol='ImageNet-1k fine-tune, 100 ep', columns=(('accuracy/top1', 'top-1 ft', 1.), )),
    Stage('linear', gpus=8, configs=dict(
              synthetic='vit-tiny-p8_linear_synthetic-imagenet.py',
              paper='vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'),
          protocol='ImageNet-1k linear probe, 90 ep',
          columns=(('accuracy/top1', 'top-1 lin', 1.), )),
    # MAE-CT tuning (configs/maect/), then frozen-feature evaluation of the pretrained and of the
    # tuned backbone. The paper recipe runs MAE-CT's two phases, the head alone (paper_head, in
    # the stage's head/ folder) then the tuning from its checkpoint; the synthetic config runs
    # both in one short run.
    Stage('maect', gpus=8, folder='maect', for_scratch=False, evaluator='features',
          eval_config='linear', evaluate_once=False, configs=dict(
              synthetic='maect-{m}_vit-tiny-p8_synthetic.py',
              paper_head='maect-{m}_vit-base-p16_8xb128-coslr-20e-head_in1k.py',
              paper='maect-{m}_vit-base-p16_8xb128-coslr-20e-tune_in1k.py'),
          protocol='MAE-CT tuning, frozen-feature evaluation',
          columns=(('knn/top1', 'k-NN (CT)', 1.), ('linear/top1', 'feat. lin. (CT)', 1.),
                   ('lowshot1/top1', '1-shot (CT)', 1.), ('cluster/acc', 'cluster (CT)', 1.))),
)
STAGES = {stage.name: stage for stage in _STAGES}
DEFAULT_STAGES = ('pretrain', 'coco', 'ade')
# the stage whose checkpoint the others start from
PRETRAIN = next(name for name, stage in STAGES.items() if stage.pretrains)
# the methods the suite pretrains itself: the masked-image-modelling ones (METHODS, drawn as
# reconstructions) and the contrastive MoCo v3, whose transfer configs are derived as a release's
PRETRAINED_HERE = tuple(STAGES[PRETRAIN].configs['paper'])
# Table columns: (stage, metric key, header, scale), in stage order
COLUMNS = tuple((stage.name, key, header, scale) for stage in _STAGES
                for key, header, scale in stage.columns)

# The protocol each stage's paper-profile config runs (the synthetic profile runs tiny models on
# toy data: no published number belongs to it), and the pretraining each method's paper-profile
# pretraining config runs: (target, epochs). A published number is shown next to a run only when
# the run's stage protocol, the method and the pretraining agree with the number's.
# The dense stages have two published protocols: 'default' (ViTDet's COCO recipe, mmseg's MAE
# ADE20K recipe) and 'cae' (CAE's own recipes, behind CAE's published numbers); the paper
# profile runs either (tools/benchmark.py --protocol), every method under the same one.
DENSE_PROTOCOLS = ('default', 'cae')
PROTOCOLS = {**{s.name: s.protocol for s in _STAGES if s.protocol},
             **{f'{s.name}_cae': s.protocol_cae for s in _STAGES if s.protocol_cae}}
PAPER_PRETRAINING = {'lomar': ('pixels', 1600), 'mae': ('pixels', 1600),
                     'cae': ('pixels, our offline variant', 300)}


def _ref(method, column, value, protocol, pretraining, source):
    return dict(method=method, column=column, value=value, protocol=protocol,
                pretraining=pretraining, source=source)


_MAE_CT = 'MAE-CT (arXiv 2304.10520) released ViT-B/16, github ml-jku/MAE-CT README'
_CAE = 'github lxtGH/CAE README.md:110-116'
REFERENCES = [
    # MAE (ViT-B/16, 1600 epochs, normalised pixels)
    _ref('mae', 'APbox', 51.6, PROTOCOLS['coco'], ('pixels', 1600),
         'detectron2 projects/ViTDet/README.md:35'),
    _ref('mae', 'APmask', 45.9, PROTOCOLS['coco'], ('pixels', 1600),
         'detectron2 projects/ViTDet/README.md:36'),
    _ref('mae', 'APbox', 50.3, 'Mask R-CNN multi-level FPN (Li et al. 2021 recipe)',
         ('pixels', 1600), 'MAE paper (arXiv 2111.06377) Table 4'),
    _ref('mae', 'APmask', 44.9, 'Mask R-CNN multi-level FPN (Li et al. 2021 recipe)',
         ('pixels', 1600), 'MAE paper (arXiv 2111.06377) Table 4'),
    _ref('mae', 'mIoU', 48.1, 'UperNet 512x512, 100 ep, BEiT code with relative position bias',
         ('pixels', 1600), 'MAE paper (arXiv 2111.06377) Table 5'),
    _ref('mae', 'mIoU', 48.13, PROTOCOLS['ade'], ('pixels', 1600),
         'mmseg configs/mae/metafile.yaml:8 (official MAE weights)'),
    _ref('mae', 'APbox', 48.4, PROTOCOLS['coco_cae'], ('pixels', 1600),
         'github lxtGH/CAE README.md:112 (from the CAE paper)'),
    _ref('mae', 'APmask', 42.6, PROTOCOLS['coco_cae'], ('pixels', 1600),
         'github lxtGH/CAE README.md:112 (from the CAE paper)'),
    _ref('mae', 'top-1 ft', 83.6, PROTOCOLS['finetune'], ('pixels', 1600),
         'github facebookresearch/mae README.md:74'),
    _ref('mae', 'top-1 lin', 68.0, 'ImageNet-1k linear probe, 90 ep, LARS batch 16384',
         ('pixels', 1600), 'github facebookresearch/mae FINETUNE.md:168'),
    _ref('mae', 'k-NN (CT)', 64.1, PROTOCOLS['maect'], ('pixels', 1600), _MAE_CT),
    _ref('mae', 'feat. lin. (CT)', 73.5, PROTOCOLS['maect'], ('pixels', 1600), _MAE_CT),
    # LoMaR: the README publishes no number; the paper's abstract gives +0.5 over MAE's 83.6
    _ref('lomar', 'top-1 ft', 84.1, PROTOCOLS['finetune'], ('pixels', 1600),
         'LoMaR paper (arXiv 2206.00790) abstract'),
    # CAE: DALL-E token targets only (the suite's CAE predicts pixels: no published number)
    _ref('cae', 'APbox', 48.3, PROTOCOLS['coco_cae'], ('DALL-E tokens', 300), _CAE),
    _ref('cae', 'APmask', 42.7, PROTOCOLS['coco_cae'], ('DALL-E tokens', 300), _CAE),
    _ref('cae', 'mIoU', 48.1, PROTOCOLS['ade_cae'], ('DALL-E tokens', 300), _CAE),
    _ref('cae', 'top-1 ft', 83.6, 'CAE ImageNet-1k fine-tune, 100 ep', ('DALL-E tokens', 300),
         _CAE),
    _ref('cae', 'top-1 lin', 64.5, 'CAE ImageNet-1k linear probe', ('DALL-E tokens', 300), _CAE),
    _ref('cae', 'APbox', 50.3, PROTOCOLS['coco_cae'], ('DALL-E tokens', 1600), _CAE),
    _ref('cae', 'APmask', 44.2, PROTOCOLS['coco_cae'], ('DALL-E tokens', 1600), _CAE),
    _ref('cae', 'mIoU', 50.3, PROTOCOLS['ade_cae'], ('DALL-E tokens', 1600), _CAE),
]
_COLUMN_STAGE = {header: stage for stage, _, header, _ in COLUMNS}


def stage_protocol(stage, protocol='default'):
    """Key of :data:`PROTOCOLS` that a stage runs: ``coco_cae`` for COCO under CAE's."""
    if protocol not in DENSE_PROTOCOLS:
        raise ValueError(f'protocol must be one of {DENSE_PROTOCOLS}, got {protocol!r}')
    return f'{stage}_cae' if protocol == 'cae' and f'{stage}_cae' in PROTOCOLS else stage


def stage_dir_name(stage, protocol='default'):
    """Folder of a stage's run: ``coco-cae`` for COCO under CAE's protocol."""
    return stage if stage_protocol(stage, protocol) == stage else f'{stage}-{protocol}'


# the release sources' published numbers, declared with each source (lomar_transfer/sources)
REFERENCES += [dict(ref, method=name) for name, source in SOURCES.items()
               for ref in source.references]


def comparable_reference(method, column, profile, protocol='default'):
    """The published number measured with this run's protocol and pretraining, or None."""
    if profile != 'paper':
        return None
    protocol = PROTOCOLS.get(stage_protocol(_COLUMN_STAGE[column], protocol))
    for ref in REFERENCES:
        if (ref['method'], ref['column'], ref['protocol']) == (method, column, protocol) \
                and tuple(ref['pretraining']) == PAPER_PRETRAINING.get(method):
            return ref
    return None


def config_path(profile, method, stage, protocol='default', phase=None):
    """Config of one stage; 'scratch' uses MAE's configs with no pretrained weights.
    ``phase='head'``: the first of a stage's two runs (MAE-CT's paper recipe), or None."""
    key = 'paper_cae' if profile == 'paper' and stage_protocol(stage, protocol) != stage \
        else profile
    if phase is not None:
        key = f'{key}_{phase}'
        if key not in STAGES[stage].configs:
            return None
    spec = STAGES[stage].configs[key]
    # a release's (and the baseline's) stage configs are MAE's; its own pretraining its own
    cfg_method = method if STAGES[stage].pretrains or method not in BASELINES + RELEASES \
        else 'mae'
    name = spec[cfg_method] if isinstance(spec, dict) else spec.format(m=cfg_method)
    return CONFIG_ROOT / (STAGES[stage].folder or cfg_method) / name


# the --cfg-options key of a stage's backbone weights (each method config has an init_cfg)
WEIGHTS_KEY = 'model.backbone.init_cfg'


def weights_option(checkpoint):
    """The --cfg-options entry that gives a stage's backbone ``checkpoint`` (OpenMMLab's
    ``init_cfg=Pretrained``, which each method config carries), or none for the baseline."""
    return f'{WEIGHTS_KEY}=None' if checkpoint is None else \
        f'{WEIGHTS_KEY}.checkpoint={checkpoint}'


def launch_gpus(stage, config):
    """GPUs of a stage's paper recipe: what the config's name says (OpenMMLab's ``16xb256``:
    16 GPUs x 256 images), else the stage's own count."""
    found = re.search(r'_(\d+)xb\d+', Path(config).name)
    return int(found[1]) if found else STAGES[stage].gpus


def preset_options(method):
    """The --cfg-options that derive a release source's stage configs from MAE's: its encoder
    preset (``lomar_transfer/sources/<name>.py``) over MAE's; none for the other methods."""
    if method not in RELEASES:
        return []
    return [f'model.backbone.{key}={value}' for key, value in SOURCES[method].encoder.items()]


def final_checkpoint(config):
    """Name of the checkpoint a training config writes at its end, read from its train loop and
    checkpoint hook as mmengine's ``CheckpointHook`` names it (``epoch_1600.pth`` for an
    epoch-based pretraining of 1600 epochs, ``iter_25020.pth`` for an iteration-based run): the
    file a printed launch plan hands to the next stage (``model.backbone.init_cfg``,
    ``load_from=``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(config))
    loop, hook = cfg.train_cfg, cfg.default_hooks.checkpoint
    by_epoch = hook.get('by_epoch', True)
    if by_epoch != ('max_epochs' in loop):
        raise ValueError(f'{config}: the checkpoint hook (by_epoch={by_epoch}) does not count in '
                         f'the units of the train loop {dict(loop)}')
    last = loop['max_epochs' if by_epoch else 'max_iters']
    interval = hook.get('interval', -1)
    if not hook.get('save_last', True) and interval > 0:
        last -= last % interval  # the last multiple of the interval
    template = hook.get('filename_tmpl') or ('epoch_{}.pth' if by_epoch else 'iter_{}.pth')
    return template.format(last)


def show_path(path):
    """A config's path as the printed commands use it: ``configs/...`` (relative to the clone's
    root, where tools/dist_train.sh runs) when the configs are a clone's, else absolute (the
    installed package's ``.mim/configs``)."""
    path = Path(path).resolve()
    clone = CONFIG_ROOT.parent
    if (clone / 'lomar_transfer').is_dir() and path.is_relative_to(clone):
        return str(path.relative_to(clone))
    return str(path)


def write_json_atomic(path, obj):
    """Write JSON through a temporary file and a rename: a kill never leaves half a file."""
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


def collect(work_dir, methods, stages, protocol='default'):
    """One row per method: the metrics (table units) and the stage results as stored."""
    rows = []
    for method in methods:
        row = dict(method=method, metrics={}, stages={})
        for stage in stages:
            result = read_result(Path(work_dir) / method / stage_dir_name(stage, protocol))
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


def seed_dir(work_dir, seed, seeds):
    """Where one seed's stages live: the work dir itself for a single seed, else seed<N>/."""
    return Path(work_dir) if len(seeds) == 1 else Path(work_dir) / f'seed{seed}'


def aggregate_seeds(per_seed):
    """``{seed: rows of collect()}`` -> one row per method: each metric's mean over the seeds
    that have it, its sample standard deviation (``std``, ddof 1) and count (``n``), and the
    per-seed values (``seeds``). A single seed gives its values with no ``std``."""
    import numpy as np
    rows = []
    for method in dict.fromkeys(r['method'] for rs in per_seed.values() for r in rs):
        runs = {seed: next(r for r in rs if r['method'] == method)
                for seed, rs in per_seed.items() if any(r['method'] == method for r in rs)}
        row = dict(method=method, metrics={}, std={}, n={},
                   seeds={seed: r['metrics'] for seed, r in runs.items()},
                   stages=next(iter(runs.values()))['stages'] if len(runs) == 1 else
                   {seed: r['stages'] for seed, r in runs.items()})
        for header in dict.fromkeys(h for r in runs.values() for h in r['metrics']):
            values = [r['metrics'][header] for r in runs.values() if header in r['metrics']]
            row['metrics'][header] = float(np.mean(values))
            row['n'][header] = len(values)
            if len(values) > 1:
                row['std'][header] = float(np.std(values, ddof=1))
        rows.append(row)
    return rows


def method_differences(rows, headers, alpha=0.05):
    """Pairs of methods whose difference in a metric is larger than the run-to-run noise:
    Welch's t-test on the per-seed values (unequal variances), two-sided p < ``alpha``. Needs
    two or more seeds per method; returns dicts (metric, better, worse, difference, p)."""
    from scipy.stats import ttest_ind
    found = []
    for header in headers:
        values = {r['method']: [m[header] for m in r['seeds'].values() if header in m]
                  for r in rows}
        names = [n for n, v in values.items() if len(v) > 1]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if values[a] == values[b]:
                    continue
                p = float(ttest_ind(values[a], values[b], equal_var=False).pvalue)
                if p < alpha:
                    hi, lo = (a, b) if sum(values[a]) / len(values[a]) > \
                        sum(values[b]) / len(values[b]) else (b, a)
                    diff = (sum(values[hi]) / len(values[hi]) - sum(values[lo]) / len(values[lo]))
                    found.append(dict(metric=header, better=hi, worse=lo,
                                      difference=round(diff, 3), p=round(p, 4)))
    return found


PICTURE_NAMES = dict(pretrain='reconstruction', coco='COCO detections and masks',
                     ade='ADE20K segmentation')


def _fmt(v):
    return '-' if v is None else f'{v:.1f}'


def write_results(work_dir, rows, stages, profile, protocol='default', seeds=(0, )):
    """results.{md,csv,json} in work_dir from :func:`aggregate_seeds` rows; returns the Markdown
    table. Several seeds: mean ± standard deviation, and the method differences larger than the
    run-to-run noise (:func:`method_differences`)."""
    work_dir = Path(work_dir)
    seeds = list(seeds)
    headers = [h for s, _, h, _ in COLUMNS if s in stages]
    dense = ', '.join(f'{s}: {PROTOCOLS[stage_protocol(s, protocol)]}' for s in stages
                      if STAGES[s].protocol_cae)
    title = f'{profile} profile' + (f'; {dense}' if profile == 'paper' and dense else '')
    title += ('; one seed (' + str(seeds[0]) + '): no estimate of the run-to-run noise'
              if len(seeds) == 1 else
              f'; mean ± standard deviation over seeds {", ".join(map(str, seeds))}')
    md = [f'Transfer results ({title}). Metrics: COCO AP x 100 (CocoMetric), '
          'ADE20K mIoU (IoUMetric), ImageNet top-1 (Accuracy), MAE-CT (CT) frozen-feature '
          'k-NN / linear / 1-shot / clustering accuracy. In brackets: the model before transfer '
          'training (pretrained backbone, untrained heads), for CT the backbone before tuning.',
          '']
    cols = ['method'] + headers + (['pretrain loss (first -> last)'] if PRETRAIN in stages
                                   else []) + ['time']
    md += ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    csv_rows = []
    for row in rows:
        cells = [row['method']]
        flat = dict(method=row['method'])
        for h in headers:
            v, u = row['metrics'].get(h), row['metrics'].get(h + ' (untrained)')
            sd = row.get('std', {}).get(h)
            cells.append(_fmt(v) + (f' ± {sd:.1f}' if sd is not None else '')
                         + (f' ({_fmt(u)})' if u is not None else ''))
            flat[h], flat[h + ' untrained'] = v, u
            if len(seeds) > 1:
                flat[h + ' std'], flat[h + ' n'] = sd, row.get('n', {}).get(h)
        runs = row['stages'] if len(seeds) == 1 else next(iter(row['stages'].values()), {})
        if PRETRAIN in stages:
            pre = runs.get(PRETRAIN, {})  # (the first seed's, with several)
            losses = pre.get('losses')
            cells.append(f'{losses[0]:.3f} -> {losses[1]:.3f}' if losses else '-')
            flat['pretrain loss first'], flat['pretrain loss last'] = losses or (None, None)
        secs = sum(s.get('seconds', 0) for s in (
            row['stages'].values() if len(seeds) == 1 else
            [st for per_seed in row['stages'].values() for st in per_seed.values()]))
        cells.append(f'{secs / 60:.1f} min')
        flat['seconds'] = round(secs, 1)
        md.append('| ' + ' | '.join(cells) + ' |')
        csv_rows.append(flat)
    differences = method_differences(rows, headers) if len(seeds) > 1 else []
    if len(seeds) == 1:
        md += ['', 'One seed: nothing here tells a difference between methods from run-to-run '
               'noise; --seeds 0 1 2 gives mean ± standard deviation and a test per difference.']
    else:
        md += ['', f'Method differences larger than the run-to-run noise (Welch\'s t-test on '
               f'the {len(seeds)} per-seed values, two-sided p < 0.05):']
        md += [f"- {d['metric']}: {d['better']} > {d['worse']} by {d['difference']:.1f} "
               f"(p = {d['p']:.3f})" for d in differences] or [
            '- none: every difference between methods is within the noise of these seeds.']
    # the stages of a row (several seeds: of the first)
    shown = [(row['method'], row['stages'] if len(seeds) == 1 else next(
        iter(row['stages'].values()), {})) for row in rows]
    pictures = [(method, stage, result['pictures'][0]) for method, stages in shown
                for stage, result in stages.items() if result.get('pictures')]
    attention = [(method, stages[PRETRAIN]['attention'][0]) for method, stages in shown
                 if stages.get(PRETRAIN, {}).get('attention')]
    if pictures or attention:  # the first of each stage; all in <method>/<stage>/pictures/
        md += ['', 'Pictures (' + ('first seed; ' if len(seeds) > 1 else '')
               + 'reconstructions: input | masked | reconstruction | target; COCO and '
               'ADE20K: ground truth | prediction; attention: the last block\'s class token, '
               'mean | each head):']
        md += [f'- {method} {PICTURE_NAMES.get(stage, stage)}: [{Path(path).name}]({path})'
               for method, stage, path in pictures]
        md += [f'- {method} attention maps: [{Path(path).name}]({path})'
               for method, path in attention]
    # published numbers: beside a run only where protocol and pretraining match
    comparable = [(row['method'], h, comparable_reference(row['method'], h, profile, protocol))
                  for row in rows for h in headers]
    comparable = [c for c in comparable if c[2] is not None]
    md += ['', 'Published numbers measured with the protocol and pretraining of these runs:']
    if not comparable:
        md.append('none (' + ('the synthetic profile trains tiny models on toy data; '
                              if profile != 'paper' else '') + 'see the list below).')
    for method, h, ref in comparable:
        md.append(f"- {method} {h}: {ref['value']:.1f} ({ref['source']})")
    md += ['', 'Published ViT-B/16 numbers and their protocols, for orientation only:', '',
           '| method | metric | value | protocol | pretraining | source |',
           '|---|---|---|---|---|---|']
    for ref in REFERENCES:
        if _COLUMN_STAGE[ref['column']] in stages:
            target, epochs = ref['pretraining']
            length = 'epochs not stated' if epochs is None else f'{epochs} ep'
            md.append(f"| {ref['method']} | {ref['column']} | {ref['value']:.1f} | "
                      f"{ref['protocol']} | {target}, {length} | {ref['source']} |")
    text = '\n'.join(md) + '\n'
    atomic_write(work_dir / 'results.md', text)  # all three: a kill or a full disk never
    table = io.StringIO(newline='')               # leaves half a file
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for r in csv_rows for k in r)))
    writer.writeheader()
    writer.writerows(csv_rows)
    atomic_write(work_dir / 'results.csv', table.getvalue())
    write_json_atomic(work_dir / 'results.json', dict(
        profile=profile, protocol=protocol, stages=list(stages), seeds=seeds, rows=rows,
        differences=differences,
        references=REFERENCES,
        comparable_references=[dict(ref, method=m, column=h) for m, h, ref in comparable]))
    return text


def _save_figure(fig, path):
    """A figure as PNG through :func:`atomic_write`: a kill never leaves half a picture."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def plot_results(work_dir, rows, stages, profile='synthetic', protocol='default', seeds=(0, )):
    """loss_curves.png (one panel per stage, one line per method and seed) and metrics.png (bars
    per method: the mean, with the standard deviation and each seed's value when there are
    several; a published number beside a bar only where it was measured with the run's protocol
    and pretraining, :func:`comparable_reference`). Returns the written paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    work_dir = Path(work_dir)
    written = []
    seeds = list(seeds)
    curves = {(r['method'], s): [loss_curve(seed_dir(work_dir, seed, seeds) / r['method']
                                            / stage_dir_name(s, protocol)) for seed in seeds]
              for r in rows for s in stages}
    trained = [s for s in stages if any(any(c) for c in (curves[r['method'], s] for r in rows))]
    if trained:
        fig, axes = plt.subplots(1, len(trained), figsize=(4.2 * len(trained), 3.4),
                                 squeeze=False)
        for ax, stage in zip(axes[0], trained):
            for i, row in enumerate(rows):
                for k, curve in enumerate(c for c in curves[row['method'], stage] if c):
                    ax.plot(*zip(*curve), color=f'C{i}', lw=1 if len(seeds) > 1 else 1.5,
                            label=row['method'] if k == 0 else None)
            ax.set(title=f'{stage} training loss', xlabel='iteration', ylabel='loss')
            ax.grid(alpha=.3)
        axes[0][0].legend()
        fig.tight_layout()
        _save_figure(fig, work_dir / 'loss_curves.png')
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
            refs = [comparable_reference(n, h, profile, protocol) for n in names]
            x = range(len(names))
            spread = [r.get('std', {}).get(h, 0.) for r in rows]
            ax.bar([i - .27 for i in x], ours, .27, yerr=spread if any(spread) else None,
                   capsize=3, label='this run' if len(seeds) == 1 else
                   f'mean ± sd, {len(seeds)} seeds')
            if len(seeds) > 1:
                for i, r in zip(x, rows):
                    per_seed = [m[h] for m in r['seeds'].values() if h in m]
                    ax.plot([i - .27] * len(per_seed), per_seed, 'k.', ms=4)
            ax.bar(list(x), base, .27, label='untrained')
            if any(refs):
                ax.bar([i + .27 for i in x], [r['value'] if r else 0. for r in refs], .27,
                       label='published, same protocol', hatch='//', alpha=.6)
            ax.set_xticks(list(x), names)
            ax.set(title=h)
            ax.grid(axis='y', alpha=.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        _save_figure(fig, work_dir / 'metrics.png')
        written.append(work_dir / 'metrics.png')
    return written
