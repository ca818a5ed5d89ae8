"""Evaluate a checkpoint with the config's test dataloader and evaluator.

    lomar-test CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json] [--show-dir DIR]
               [--cfg-options ...]
    (python tools/test.py ... in a clone of the repository)

Prints the metrics (coco/bbox_mAP, coco/segm_mAP, mIoU, accuracy/top1, ...) and optionally writes
them to a JSON file. CHECKPOINT ``none`` evaluates the model as the config initialises it (the
pretrained backbone, untrained heads): the untrained baseline of a transfer config.
``--show-dir`` draws every test image's prediction there with the config's OpenMMLab visualizer
(mmdet: ground truth | boxes and masks; mmseg: ground truth | label map, blended over the image;
mmpretrain: the predicted class), as the stock tools/test.py of each project does.
"""
import argparse
import json
import os.path as osp

from mmengine.config import DictAction
from mmengine.dist import broadcast
from mmengine.model import is_model_wrapper

from ..fileio import MissingCheckpointError, atomic_write
from ..errors import one_line_errors
from ..utils import build_runner, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="the trained model's checkpoint, or none: the "
                        'model as the config initialises it (its init_cfg: pretrained backbone, '
                        'new heads)')
    parser.add_argument('--work-dir', help='default: work_dirs/<config name>')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--show-dir', help='draw the predictions of every test image here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    parser.add_argument('--seed', type=int, help="sets the config's randomness.seed")
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    return parser.parse_args(argv)


def draw_predictions(cfg, show_dir):
    """Switch on the config's visualization hook, writing one picture per test image to
    ``show_dir`` (the settings of mmdet/mmseg/mmpretrain tools/test.py, with interval 1)."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise SystemExit(f'--show-dir: {cfg.filename} has no default_hooks.visualization; add '
                         "the project's hook (e.g. dict(type='DetVisualizationHook'))")
    show_dir = osp.abspath(show_dir)
    kind = hook['type'].split('.')[-1]
    if kind == 'DetVisualizationHook':  # mmdet/engine/hooks/utils.py trigger_visualization_hook
        hook.update(draw=True, interval=1, test_out_dir=show_dir)
    elif kind == 'SegVisualizationHook':  # mmseg tools/test.py trigger_visualization_hook
        hook.update(draw=True, interval=1)
        cfg.visualizer['save_dir'] = show_dir  # pictures go to show_dir/vis_data/vis_image
    elif kind == 'VisualizationHook':  # mmpretrain tools/test.py merge_args
        hook.update(enable=True, interval=1, out_dir=show_dir)
    else:
        raise SystemExit(f'--show-dir: unknown visualization hook {hook["type"]}')


@one_line_errors()  # also for a bad pretrained= of CHECKPOINT none
def main(argv=None):
    args = parse_args(argv)
    untrained = args.checkpoint == 'none'
    if not untrained and not osp.isfile(args.checkpoint):  # before building the runner
        raise MissingCheckpointError(args.checkpoint, 'not found: check the path')
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher,
                      args.seed)
    cfg.load_from = None if untrained else args.checkpoint
    if args.show_dir:
        draw_predictions(cfg, args.show_dir)
    runner = build_runner(cfg)
    if untrained:  # the Runner only initialises weights for training: as it does there, the
        # model inside its DDP wrapper (tools/dist_test.sh), rank 0's weights on every rank
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.init_weights()
        for tensor in model.state_dict().values():
            broadcast(tensor)
    metrics = runner.test()
    print(json.dumps(metrics, indent=1))
    if args.out:
        atomic_write(args.out, json.dumps(metrics, indent=1))


if __name__ == '__main__':
    main()
