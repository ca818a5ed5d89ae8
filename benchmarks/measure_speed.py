"""Speed and memory measurements of the suite (measurements, never pass/fail tests).

    .venv/bin/python benchmarks/measure_speed.py [--sections gemm pretrain profile pipeline vit
                                                  dense roi knn] [--sizes ...] [--batch 2 4]
                                                  [--adamw fused|per-tensor] [--out FILE]

Writes the JSON and prints the Markdown tables kept in benchmarks/README.md. Every timing is the
median of repeats after warm-up, in this process with torch's default threads.

- gemm: large fp32 matrix products, the machine's practical peak FLOP/s.
- pretrain: one pretraining step (uint8 images through the data preprocessor, forward, backward,
  AdamW) of LoMaR and of mmpretrain's MAE (its own MAEViT encoder and decoder), ViT-B/16, at
  several input sizes and batch sizes: images/s, the ratio, analytic FLOPs per image and achieved
  FLOP/s as a share of the gemm peak of the same run.
- profile: where one LoMaR step's time goes (torch profiler): matrix products, attention softmax,
  relative position term, norms and activations, windows/masking/targets/loss, optimizer, data
  preprocessor, copies and element-wise work, Python.
- pipeline: the pretraining recipes' data pipeline (decode, random resized crop, flip, pack) on
  one core, per transform, and the loader workers one GPU needs at a stated throughput.
- vit: our ViT-B/16 vs timm's vit_base_patch16_224 with identical weights, forward and
  forward + backward.
- dense: peak resident memory and time of one training step of the paper-sized Mask R-CNN
  (1024x1024, batch 1) and UperNet (512x512, batch 2) on CPU, each in a fresh subprocess.
- roi: mmcv's RoIAlign vs the torchvision kernel (mmcv's use_torchvision) on a Mask R-CNN-sized
  RoI batch, forward + backward.
- knn: MAE-CT's k-NN (k = 10, chunked) on ImageNet-sized random features (1.28M x 768 train),
  for a slice of the 50k test features, in a fresh process: seconds, extrapolated to the 50k
  test images, and peak memory (the unchunked similarity matrix would need ~256 GB).
"""
import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from lomar_transfer.fileio import atomic_write

REPO = Path(__file__).resolve().parents[1]  # the configs; the package is the installed one


def median_time(fn, warmup=1, repeats=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ----------------------------------------------------------------------------- analytic FLOPs
def block_flops(tokens, dims, mlp_ratio=4):
    """Forward FLOPs (2 per multiply-add) of one transformer block on a sequence."""
    linear = 2 * tokens * dims * dims * (4 + 2 * mlp_ratio)  # qkv + proj + mlp
    attention = 2 * 2 * tokens * tokens * dims  # q @ k^T and attn @ v
    return linear + attention


def lomar_flops(img, patch=16, dims=768, depth=12, windows=4, k=7):
    per_window = depth * block_flops(k * k + 1, dims)
    embed = 2 * windows * k * k * 3 * patch * patch * dims
    head = 2 * windows * k * k * dims * 3 * patch * patch
    return windows * per_window + embed + head  # independent of the image size


def mae_flops(img, patch=16, dims=768, depth=12, dec_dims=512, dec_depth=8, mask_ratio=.75):
    n = (img // patch)**2
    visible = int(n * (1 - mask_ratio)) + 1
    embed = 2 * n * 3 * patch * patch * dims  # MAE embeds every patch, then drops 75%
    enc = depth * block_flops(visible, dims)
    dec = 2 * visible * dims * dec_dims + dec_depth * block_flops(n + 1, dec_dims)
    pred = 2 * (n + 1) * dec_dims * 3 * patch * patch
    return embed + enc + dec + pred


def vit_flops(img, patch=16, dims=768, depth=12):
    n = (img // patch)**2
    return 2 * n * 3 * patch * patch * dims + depth * block_flops(n + 1, dims)


# ----------------------------------------------------------------------------- sections
def bench_gemm():
    rows = []
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n), torch.randn(n, n)
        t = median_time(lambda: a @ b, warmup=2, repeats=5)
        rows.append(dict(n=n, seconds=t, gflops=2 * n**3 / t / 1e9))
    return dict(rows=rows, peak_gflops=max(r['gflops'] for r in rows))


def train_flops(method, img):
    """Analytic FLOPs of one training step per image (forward + backward = 3x forward)."""
    return 3 * (lomar_flops(img) if method == 'lomar' else mae_flops(img))


def _pretrain_config(method):
    """Each method's ViT-B/16 pretraining recipe: ours for LoMaR, mmpretrain's own for MAE."""
    from mmengine.config import Config
    from mmengine.hub import get_config

    from lomar_transfer.benchmark import config_path
    if method == 'lomar':  # the suite's own pretraining config
        return Config.fromfile(config_path('paper', 'lomar', 'pretrain'))
    return get_config('mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py')


def _pretrain_model(method, img):
    from mmengine.registry import DefaultScope, MODELS
    cfg = _pretrain_config(method)
    model_cfg = cfg.model
    model_cfg.backbone.img_size = img
    if method == 'mae':
        model_cfg.neck.num_patches = (img // 16)**2
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        import lomar_transfer  # noqa: F401
        model = MODELS.build(model_cfg)
    model.init_weights()
    return model.train()


def _adamw(model, fused):
    """The pretraining recipes' AdamW (betas 0.9, 0.95, wd 0.05), the same for both methods:
    ``fused`` (one kernel over all tensors, as the LoMaR config asks) or torch's CPU default
    (a loop of element-wise kernels per tensor)."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95),
                             weight_decay=0.05, fused=fused)


def _train_step(model, optim, batch, img):
    """One training step as the runner runs it: uint8 images through the model's data
    preprocessor, loss, backward, optimizer step."""
    from mmpretrain.structures import DataSample
    from torch.profiler import record_function
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, img, img), dtype=torch.uint8, generator=g)
    samples = [DataSample() for _ in range(batch)]

    def step():
        with record_function('data preprocessor'):
            data = model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
        losses = model.loss(data['inputs'], data['data_samples'])
        sum(losses.values()).backward()
        with record_function('optimizer step'):
            optim.step()
            optim.zero_grad(set_to_none=True)
    return step


def bench_pretrain(sizes, batches, peak, fused=True, repeats=5):
    """LoMaR and MAE steps timed in turn (one of each per repeat), so that a drift of the
    machine's speed during the run moves both and not their ratio."""
    rows = []
    for img in sizes:
        for batch in batches:
            row = dict(img=img, batch=batch, fused_adamw=fused)
            steps = {}
            for method in ('lomar', 'mae'):
                torch.manual_seed(0)
                model = _pretrain_model(method, img)
                steps[method] = _train_step(model, _adamw(model, fused), batch, img)
                steps[method]()  # warm-up
            times = {method: [] for method in steps}
            for _ in range(repeats):
                for method, step in steps.items():
                    t = time.perf_counter()
                    step()
                    times[method].append(time.perf_counter() - t)
            del steps
            for method, ts in times.items():
                t = statistics.median(ts)
                flops = train_flops(method, img)
                row[method] = dict(seconds_per_step=t, images_per_s=batch / t,
                                   gflops_per_image=flops / 1e9,
                                   achieved_gflops=flops * batch / t / 1e9,
                                   fraction_of_peak=flops * batch / t / 1e9 / peak)
            row['speedup_lomar_vs_mae'] = (row['lomar']['images_per_s']
                                           / row['mae']['images_per_s'])
            row['analytic_flops_ratio'] = (row['mae']['gflops_per_image']
                                           / row['lomar']['gflops_per_image'])
            rows.append(row)
            print(f'  pretrain {img}px batch {batch}: LoMaR {row["lomar"]["images_per_s"]:.2f} '
                  f'img/s, MAE {row["mae"]["images_per_s"]:.2f} img/s, ratio '
                  f'{row["speedup_lomar_vs_mae"]:.2f}x (analytic '
                  f'{row["analytic_flops_ratio"]:.2f}x)', flush=True)
    return rows


# Where a LoMaR step's time goes. Matrix products are counted with everything they run inside
# (addmm's bias copy into its output); every other operator by its own (self) time, under the
# first rule that matches: its name, the autograd node running it (backward), the phase or module
# it runs in (forward hooks below). Time in no operator (Python) is the remainder of the wall time.
MATMULS = ('aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm')
BY_NAME = (('gelu', 'norms and activations'), ('layer_norm', 'norms and activations'),
           ('softmax', 'attention softmax'), ('scaled_dot_product', 'attention softmax'))
BY_BACKWARD_NODE = (('Gather', 'relative position term'),
                    ('NativeLayerNorm', 'norms and activations'),
                    ('Gelu', 'norms and activations'), ('Softmax', 'attention softmax'),
                    ('Index', 'windows, masking, targets, loss'),
                    ('Where', 'windows, masking, targets, loss'),
                    ('MseLoss', 'windows, masking, targets, loss'))
PROFILE_ROWS = ('matrix products', 'attention softmax', 'relative position term',
                'norms and activations', 'windows, masking, targets, loss', 'optimizer step',
                'data preprocessor', 'copies and element-wise', 'outside operators (Python)')


def _label_modules(model):
    """Forward hooks that open a profiler range around each LoMaR module of interest."""
    from torch.profiler import record_function

    from lomar_transfer.models.backbones.relative_position import ContextualKeyRPE
    from lomar_transfer.models.backbones.vision_transformer import Block
    handles, open_ranges = [], []

    def enter(label):
        def hook(module, args):
            open_ranges.append(record_function(label))
            open_ranges[-1].__enter__()
        return hook

    def leave(module, args, out):
        open_ranges.pop().__exit__(None, None, None)

    for module in model.modules():
        label = ('relative position term' if isinstance(module, ContextualKeyRPE) else
                 'encoder block' if isinstance(module, Block) else None)
        if label:
            handles += [module.register_forward_pre_hook(enter(label)),
                        module.register_forward_hook(leave)]
    return handles


def _category(event):
    names = []
    parent = event
    while parent is not None:
        names.append(parent.name)
        parent = parent.cpu_parent
    for phase in ('data preprocessor', 'optimizer step'):
        if phase in names:
            return phase
    for key, category in BY_NAME:
        if key in event.name:
            return category
    node = next((n for n in names if n.startswith('autograd::engine::evaluate_function')), None)
    if node is not None:
        return next((c for k, c in BY_BACKWARD_NODE if k in node), 'copies and element-wise')
    if 'relative position term' in names:
        return 'relative position term'
    if 'encoder block' in names:
        return 'copies and element-wise'
    return 'windows, masking, targets, loss'  # forward outside the blocks


def profile_lomar(img, batch, fused, steps=3):
    """Share of a LoMaR ViT-B/16 training step's time per kind of work (torch profiler, summed
    over ``steps`` steps after two warm-up steps)."""
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    model = _pretrain_model('lomar', img)
    step = _train_step(model, _adamw(model, fused), batch, img)
    step()
    step()
    handles = _label_modules(model)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - t) * 1e6
    for h in handles:
        h.remove()
    times = dict.fromkeys(PROFILE_ROWS, 0.)

    def visit(event):
        if event.name in MATMULS:
            times['matrix products'] += event.cpu_time_total
            return
        times[_category(event)] += event.self_cpu_time_total
        for child in event.cpu_children:
            visit(child)

    for event in prof.events():
        if event.cpu_parent is None:
            visit(event)
    times['outside operators (Python)'] = max(wall - sum(times.values()), 0.)
    return dict(img=img, batch=batch, fused_adamw=fused, seconds=wall / 1e6 / steps,
                shares={k: v / wall for k, v in times.items()})


def bench_profile(sizes, batches, fused):
    rows = []
    for img in sizes:
        for batch in batches:
            rows.append(profile_lomar(img, batch, fused))
            print(f'  profile {img}px batch {batch}: matrix products '
                  f'{rows[-1]["shares"]["matrix products"]:.1%}', flush=True)
    return rows


def _pretrain_pipeline(method, img):
    """The training pipeline of each method's pretraining config, cropping to ``img``."""
    cfg = _pretrain_config(method)
    pipeline = cfg.train_dataloader.dataset.pipeline
    for t in pipeline:
        if t['type'].endswith('RandomResizedCrop'):
            t['scale'] = img
    return pipeline


def _jpegs(folder, count=24, size=(500, 375)):
    """``count`` JPEGs of ImageNet's typical size (500 x 375), textured like photographs (smooth
    shapes plus grain) so that they decode at a realistic cost."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, (size[1] // 25, size[0] // 25, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize(size, Image.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, smooth.shape, dtype=np.int16)
        path = Path(folder) / f'{i}.JPEG'
        Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def bench_pipeline(img, gpu_tflops, repeats=3):
    """Images per second per CPU core of each pretraining recipe's data pipeline (one worker
    process's work: decode, random resized crop, flip, pack), the time of each transform, and the
    loader workers one GPU needs at ``gpu_tflops`` of sustained training throughput."""
    import tempfile

    import cv2
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import TRANSFORMS
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    out = dict(img=img, gpu_tflops=gpu_tflops)
    with tempfile.TemporaryDirectory() as folder, \
            DefaultScope.overwrite_default_scope('mmpretrain'):
        paths = _jpegs(folder)
        for method in ('lomar', 'mae'):
            transforms = [TRANSFORMS.build(t) for t in _pretrain_pipeline(method, img)]
            names = [type(t).__name__ for t in transforms]
            per_transform = dict.fromkeys(names, 0.)
            runs = []
            for r in range(repeats + 1):  # the first pass warms the caches, not timed
                start = time.perf_counter()
                for path in paths:
                    results = dict(img_path=path)
                    for name, transform in zip(names, transforms):
                        t = time.perf_counter()
                        results = transform(results)
                        if r:
                            per_transform[name] += time.perf_counter() - t
                if r:
                    runs.append(time.perf_counter() - start)
            images_per_s = len(paths) / statistics.median(runs)
            gpu_images_per_s = gpu_tflops * 1e12 / train_flops(method, img)
            out[method] = dict(
                images_per_s_per_core=images_per_s,
                ms_per_image={n: 1e3 * v / (len(paths) * repeats)
                              for n, v in per_transform.items()},
                gpu_images_per_s=gpu_images_per_s,
                workers_per_gpu=gpu_images_per_s / images_per_s)
            print(f'  pipeline {method} {img}px: {images_per_s:.0f} img/s per core; '
                  f'{out[method]["workers_per_gpu"]:.1f} workers per GPU', flush=True)
    torch.set_num_threads(threads)
    return out


def bench_vit(batch, peak):
    import timm

    from lomar_transfer.models.backbones.converters import convert_to_timm
    from lomar_transfer.models import VisionTransformer
    torch.manual_seed(0)
    ours = VisionTransformer(arch='base', patch_size=16, img_size=224, out_type='raw')
    ours.init_weights()
    theirs = timm.create_model('vit_base_patch16_224', pretrained=False, num_classes=0)
    sd, _ = convert_to_timm({k: v for k, v in ours.state_dict().items()}, 224)
    theirs.load_state_dict(sd)
    x = torch.randn(batch, 3, 224, 224)
    flops = vit_flops(224) * batch
    out = {}
    for name, model in (('ours', ours), ('timm', theirs)):
        fwd_fn = (lambda m=model: m(x)[0]) if name == 'ours' else (
            lambda m=model: m.forward_features(x))
        model.eval()
        with torch.no_grad():
            diff_ref = fwd_fn()
            t_fwd = median_time(fwd_fn, warmup=1, repeats=5)
        model.train()

        def fwd_bwd(f=fwd_fn):
            f().float().mean().backward()

        t_train = median_time(fwd_bwd, warmup=1, repeats=3)
        out[name] = dict(forward_images_per_s=batch / t_fwd,
                         forward_fraction_of_peak=flops / t_fwd / 1e9 / peak,
                         train_images_per_s=batch / t_train,
                         train_fraction_of_peak=3 * flops / t_train / 1e9 / peak)
        out[name + '_features'] = diff_ref
    diff = (out.pop('ours_features') - out.pop('timm_features')).abs().max().item()
    out.update(batch=batch, max_abs_feature_diff=diff,
               forward_ratio=out['ours']['forward_images_per_s'] / out['timm'][
                   'forward_images_per_s'],
               train_ratio=out['ours']['train_images_per_s'] / out['timm']['train_images_per_s'])
    return out


def dense_child(config, size, batch, options):
    """One training step of a paper-sized dense model (run in a fresh process: its peak memory
    is the step's own)."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, DefaultScope

    import lomar_transfer  # noqa: F401
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None  # random weights: the step's cost, not a checkpoint's
    for k, v in options.items():
        cfg.model.backbone[k] = v
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        model = revert_sync_batchnorm(model).train()
        samples = (_detection_samples if cfg.default_scope == 'mmdet' else
                   _segmentation_samples)(size, batch)
        x = torch.randn(batch, 3, size, size)
        optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
        times = []
        for _ in range(2):
            t = time.perf_counter()
            loss, _ = model.parse_losses(model.loss(x, samples))
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t)
    return dict(peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                seconds_per_step=times[-1])


def _detection_samples(size, batch):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    samples = []
    for _ in range(batch):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                        ori_shape=(size, size), scale_factor=(1., 1.),
                                        batch_input_shape=(size, size)))
        boxes = torch.tensor([[100., 120., 400., 380.], [500., 500., 900., 800.]])
        masks = torch.zeros(2, size, size, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        s.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([1, 2]),
                                      masks=BitmapMasks(masks.numpy(), size, size))
        samples.append(s)
    return samples


def _segmentation_samples(size, batch):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(batch):
        s = SegDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                        ori_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, size, size)))
        samples.append(s)
    return samples


def in_fresh_process(name, **kwargs):
    """``CHILDREN[name](**kwargs)`` run by this script in a new interpreter: (result, None) or
    (None, the error's last line)."""
    out = subprocess.run([sys.executable, __file__, '--child', name, json.dumps(kwargs)],
                         capture_output=True, text=True)
    if out.returncode:
        return None, (out.stderr.strip().splitlines() or ['no output'])[-1]
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def bench_dense():
    runs = [
        ('Mask R-CNN ViT-B/16 1024x1024, batch 1',
         'configs/mae/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py', 1024, 1, {}),
        ('Mask R-CNN ViT-B/16 1024x1024, batch 1, activation checkpointing',
         'configs/mae/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py', 1024, 1,
         dict(with_cp=True)),
        ('UperNet ViT-B/16 512x512, batch 2',
         'configs/mae/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py', 512, 2, {}),
    ]
    rows = []
    for name, config, size, batch, options in runs:
        result, error = in_fresh_process('dense', config=str(REPO / config), size=size,
                                         batch=batch, options=options)
        rows.append(dict(name=name, error=error) if error else dict(name=name, **result))
        print(f'  {rows[-1]}', flush=True)
    return rows


def bench_roi():
    from mmcv.ops import RoIAlign
    torch.manual_seed(0)
    feats = torch.randn(2, 256, 256, 256, requires_grad=True)  # stride-4 level of 1024 input
    n = 1024  # 512 sampled RoIs per image, as Mask R-CNN trains
    xy = torch.rand(n, 2) * 900
    rois = torch.cat([torch.randint(0, 2, (n, 1)).float(), xy, xy + torch.rand(n, 2) * 120 + 8],
                     1)
    out = {}
    for name, tv in (('mmcv', False), ('torchvision', True)):
        layer = RoIAlign(7, 1 / 4, 0, use_torchvision=tv)

        def step(layer=layer):
            layer(feats, rois).sum().backward()

        out[name + '_seconds'] = median_time(step, warmup=1, repeats=3)
    out['speedup_torchvision'] = out['mmcv_seconds'] / out['torchvision_seconds']
    return out


def knn_child(n_train, n_test, dims):
    """MAE-CT's k-NN on random features (in a fresh process: peak memory of its own)."""
    from lomar_transfer.evaluation import knn_accuracy
    g = torch.Generator().manual_seed(0)
    train = torch.randn(n_train, dims, generator=g)
    train_y = torch.randint(0, 1000, (n_train, ), generator=g)
    test = torch.randn(n_test, dims, generator=g)
    test_y = torch.randint(0, 1000, (n_test, ), generator=g)
    features_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t = time.perf_counter()
    acc = knn_accuracy(train, train_y, test, test_y, k=10)
    sec = time.perf_counter() - t
    return dict(seconds=sec, top1=acc, features_rss_gib=features_gib,
                peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


CHILDREN = dict(dense=dense_child, knn=knn_child)


def bench_knn(n_train=1281167, n_test=2048, dims=768, full_test=50000):
    r, error = in_fresh_process('knn', n_train=n_train, n_test=n_test, dims=dims)
    if error:
        return dict(error=error)
    r.update(n_train=n_train, n_test=n_test, dims=dims, full_test=full_test,
             seconds_full_test=r['seconds'] * full_test / n_test,
             gflops=2 * n_train * n_test * dims / r['seconds'] / 1e9,
             unchunked_matrix_gib=full_test * n_train * 4 / 2**30)
    print(f'  knn: {r}', flush=True)
    return r


# ----------------------------------------------------------------------------- report
def markdown(res):
    lines = [f'Machine: {res["machine"]}; torch {res["torch"]}, {res["threads"]} threads.', '']
    if 'gemm' in res:
        lines += ['| fp32 GEMM n | GFLOP/s |', '|---|---|']
        lines += [f'| {r["n"]} | {r["gflops"]:.1f} |' for r in res['gemm']['rows']]
        lines.append('')
    if 'pretrain' in res:
        fused = res['pretrain'][0].get('fused_adamw')
        lines += [f'AdamW: {"fused" if fused else "per-tensor (torch CPU default)"}, both methods.',
                  '']
        lines += ['| input | batch | LoMaR img/s | MAE img/s | LoMaR / MAE | analytic FLOPs ratio '
                  '| LoMaR GFLOP/img (train) | MAE GFLOP/img (train) | LoMaR % peak | MAE % peak |',
                  '|---|---|---|---|---|---|---|---|---|---|']
        for r in res['pretrain']:
            lo, ma = r['lomar'], r['mae']
            lines.append(
                f'| {r["img"]} | {r["batch"]} | {lo["images_per_s"]:.2f} | '
                f'{ma["images_per_s"]:.2f} | {r["speedup_lomar_vs_mae"]:.2f}x | '
                f'{r["analytic_flops_ratio"]:.2f}x | {lo["gflops_per_image"]:.0f} | '
                f'{ma["gflops_per_image"]:.0f} | {100 * lo["fraction_of_peak"]:.0f}% | '
                f'{100 * ma["fraction_of_peak"]:.0f}% |')
        lines.append('')
    if 'profile' in res:
        rows = res['profile']
        lines += ['| share of a LoMaR ViT-B/16 training step | ' + ' | '.join(
            f'{r["img"]}px, batch {r["batch"]}' for r in rows) + ' |',
            '|---|' + '---|' * len(rows)]
        lines += [f'| {k} | ' + ' | '.join(f'{100 * r["shares"][k]:.1f}%' for r in rows) + ' |'
                  for k in PROFILE_ROWS]
        lines += ['| step (s, under the profiler) | ' + ' | '.join(
            f'{r["seconds"]:.2f}' for r in rows) + ' |', '']
    if 'pipeline' in res:
        r = res['pipeline']
        names = list(r['lomar']['ms_per_image'])
        lines += [f'| data pipeline at {r["img"]}, one core | LoMaR | MAE |', '|---|---|---|']
        lines += [f'| {n}, ms / image | {r["lomar"]["ms_per_image"][n]:.1f} | '
                  f'{r["mae"]["ms_per_image"].get(n, float("nan")):.1f} |' for n in names]
        lines += [f'| images / s per core | {r["lomar"]["images_per_s_per_core"]:.0f} | '
                  f'{r["mae"]["images_per_s_per_core"]:.0f} |',
                  f'| GPU images / s at {r["gpu_tflops"]:.0f} TFLOP/s | '
                  f'{r["lomar"]["gpu_images_per_s"]:.0f} | {r["mae"]["gpu_images_per_s"]:.0f} |',
                  f'| loader workers (cores) per GPU | {r["lomar"]["workers_per_gpu"]:.1f} | '
                  f'{r["mae"]["workers_per_gpu"]:.1f} |', '']
    if 'vit' in res:
        v = res['vit']
        lines += ['| ViT-B/16 224, batch %d | ours | timm | ours / timm |' % v['batch'],
                  '|---|---|---|---|',
                  f'| forward img/s | {v["ours"]["forward_images_per_s"]:.2f} | '
                  f'{v["timm"]["forward_images_per_s"]:.2f} | {v["forward_ratio"]:.2f}x |',
                  f'| forward + backward img/s | {v["ours"]["train_images_per_s"]:.2f} | '
                  f'{v["timm"]["train_images_per_s"]:.2f} | {v["train_ratio"]:.2f}x |',
                  f'| forward % of GEMM peak | {100 * v["ours"]["forward_fraction_of_peak"]:.0f}% '
                  f'| {100 * v["timm"]["forward_fraction_of_peak"]:.0f}% | |',
                  f'| max abs feature difference | {v["max_abs_feature_diff"]:.1e} | | |', '']
    if 'dense' in res:
        lines += ['| training step on CPU | peak RSS (GiB) | s / step |', '|---|---|---|']
        for r in res['dense']:
            if 'error' in r:
                lines.append(f'| {r["name"]} | error: {r["error"]} | |')
            else:
                lines.append(f'| {r["name"]} | {r["peak_rss_gib"]:.1f} | '
                             f'{r["seconds_per_step"]:.1f} |')
        lines.append('')
    if 'roi' in res:
        r = res['roi']
        lines += ['| RoIAlign 7x7, 1024 RoIs on 2x256x256x256, fwd + bwd | s |', '|---|---|',
                  f'| mmcv | {r["mmcv_seconds"]:.2f} |',
                  f'| torchvision (mmcv use_torchvision=True) | {r["torchvision_seconds"]:.2f} |',
                  f'| speed-up | {r["speedup_torchvision"]:.2f}x |', '']
    if 'knn' in res and 'error' not in res['knn']:
        r = res['knn']
        lines += [f'| MAE-CT k-NN, k = 10, {r["n_train"]} x {r["dims"]} train features | |',
                  '|---|---|',
                  f'| {r["n_test"]} test features, s | {r["seconds"]:.1f} |',
                  f'| extrapolated to {r["full_test"]} test features, min | '
                  f'{r["seconds_full_test"] / 60:.1f} |',
                  f'| similarity GFLOP/s | {r["gflops"]:.0f} |',
                  f'| peak RSS (features alone), GiB | {r["peak_rss_gib"]:.1f} '
                  f'({r["features_rss_gib"]:.1f}) |',
                  f'| unchunked {r["full_test"]} x {r["n_train"]} matrix, GiB | '
                  f'{r["unchunked_matrix_gib"]:.0f} |', '']
    return '\n'.join(lines)


def main():
    if sys.argv[1:2] == ['--child']:  # in_fresh_process
        print(json.dumps(CHILDREN[sys.argv[2]](**json.loads(sys.argv[3]))))
        return
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--sections', nargs='+', default=['gemm', 'pretrain', 'profile', 'pipeline',
                                                      'vit', 'dense', 'roi'])
    p.add_argument('--sizes', nargs='+', type=int, default=[224, 384, 448, 512])
    p.add_argument('--batch', nargs='+', type=int, default=[2, 4])
    p.add_argument('--profile-size', type=int, default=448)
    p.add_argument('--adamw', choices=['fused', 'per-tensor'], default='fused',
                   help="AdamW implementation of the pretraining steps (both methods): 'fused' "
                   "as the LoMaR config, or torch's CPU default (per-tensor loop)")
    p.add_argument('--gpu-tflops', type=float, default=100.,
                   help='sustained training throughput of one GPU, for the loader workers it '
                   'needs (100: an A100 at a third of its 312 TFLOP/s fp16 peak)')
    p.add_argument('--out', default=str(REPO / 'benchmarks/results.json'))
    args = p.parse_args()
    t0 = time.time()
    res = dict(machine=f'{platform.processor() or platform.machine()}, '
               f'{torch.get_num_threads()} threads', torch=torch.__version__,
               threads=torch.get_num_threads())
    peak = None
    if {'gemm', 'pretrain', 'profile', 'vit'} & set(args.sections):
        res['gemm'] = bench_gemm()
        peak = res['gemm']['peak_gflops']
        print(f'gemm peak {peak:.1f} GFLOP/s', flush=True)
    if 'pretrain' in args.sections:
        res['pretrain'] = bench_pretrain(args.sizes, args.batch, peak, args.adamw == 'fused')
    if 'profile' in args.sections:
        res['profile'] = bench_profile([args.profile_size], args.batch, args.adamw == 'fused')
    if 'pipeline' in args.sections:
        res['pipeline'] = bench_pipeline(args.profile_size, args.gpu_tflops)
    if 'vit' in args.sections:
        res['vit'] = bench_vit(8, peak)
        print(f'  vit: forward ours/timm {res["vit"]["forward_ratio"]:.2f}x', flush=True)
    if 'dense' in args.sections:
        res['dense'] = bench_dense()
    if 'roi' in args.sections:
        res['roi'] = bench_roi()
    if 'knn' in args.sections:
        res['knn'] = bench_knn()
    res['wall_seconds'] = time.time() - t0
    res['max_rss_gib_parent'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if Path(args.out).exists():  # keep the sections not re-run this time
        res = {**json.loads(Path(args.out).read_text()), **res}
    atomic_write(args.out, json.dumps(res, indent=1))
    print('\n' + markdown(res))
    print(f'\nwritten {args.out} in {res["wall_seconds"]:.0f}s')


if __name__ == '__main__':
    main()
