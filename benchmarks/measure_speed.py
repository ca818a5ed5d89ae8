"""Speed and memory measurements of the suite (measurements, never pass/fail tests).

    .venv/bin/python benchmarks/measure_speed.py [--sections gemm pretrain vit dense roi]
                                                  [--out benchmarks/results.json]

Writes the JSON and prints the Markdown tables kept in benchmarks/README.md. Every timing is the
median of repeats after warm-up, in this process with torch's default threads.

- gemm: large fp32 matrix products, the machine's practical peak FLOP/s.
- pretrain: one pretraining step (forward + backward + AdamW) of LoMaR and of mmpretrain's MAE
  (its own MAEViT encoder and decoder), ViT-B/16, at several input sizes: images/s, the ratio,
  analytic FLOPs per image and achieved FLOP/s.
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


def _pretrain_model(method, img):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope, MODELS
    cfg_file = dict(
        lomar='configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
        mae='mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py')[method]
    if cfg_file.startswith('mmpretrain::'):
        from mmengine.hub import get_config
        cfg = get_config(cfg_file)
    else:
        cfg = Config.fromfile(REPO / cfg_file)
    model_cfg = cfg.model
    model_cfg.backbone.img_size = img
    if method == 'mae':
        model_cfg.neck.num_patches = (img // 16)**2
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        import lomar_transfer  # noqa: F401
        model = MODELS.build(model_cfg)
    model.init_weights()
    return model.train()


def bench_pretrain(sizes, batch, peak):
    from mmpretrain.structures import DataSample
    rows = []
    for img in sizes:
        row = dict(img=img, batch=batch)
        for method in ('lomar', 'mae'):
            torch.manual_seed(0)
            model = _pretrain_model(method, img)
            optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
            x = torch.randn(batch, 3, img, img)
            samples = [DataSample() for _ in range(batch)]

            def step():
                losses = model.loss(x, samples)
                sum(losses.values()).backward()
                optim.step()
                optim.zero_grad(set_to_none=True)

            t = median_time(step, warmup=1, repeats=3)
            flops = 3 * (lomar_flops(img) if method == 'lomar' else mae_flops(img))  # fwd+bwd
            row[method] = dict(seconds_per_step=t, images_per_s=batch / t,
                               gflops_per_image=flops / 1e9,
                               achieved_gflops=flops * batch / t / 1e9,
                               fraction_of_peak=flops * batch / t / 1e9 / peak)
            del model, optim
        row['speedup_lomar_vs_mae'] = row['lomar']['images_per_s'] / row['mae']['images_per_s']
        row['analytic_flops_ratio'] = (row['mae']['gflops_per_image']
                                       / row['lomar']['gflops_per_image'])
        rows.append(row)
        print(f'  pretrain {img}px: LoMaR {row["lomar"]["images_per_s"]:.2f} img/s, MAE '
              f'{row["mae"]["images_per_s"]:.2f} img/s, ratio {row["speedup_lomar_vs_mae"]:.2f}x'
              f' (analytic {row["analytic_flops_ratio"]:.2f}x)', flush=True)
    return rows


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
    cfg.model.backbone.pretrained = None
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
    p.add_argument('--sections', nargs='+', default=['gemm', 'pretrain', 'vit', 'dense', 'roi'])
    p.add_argument('--sizes', nargs='+', type=int, default=[224, 384, 448, 512])
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--out', default=str(REPO / 'benchmarks/results.json'))
    args = p.parse_args()
    t0 = time.time()
    res = dict(machine=f'{platform.processor() or platform.machine()}, '
               f'{torch.get_num_threads()} threads', torch=torch.__version__,
               threads=torch.get_num_threads())
    peak = None
    if {'gemm', 'pretrain', 'vit'} & set(args.sections):
        res['gemm'] = bench_gemm()
        peak = res['gemm']['peak_gflops']
        print(f'gemm peak {peak:.1f} GFLOP/s', flush=True)
    if 'pretrain' in args.sections:
        res['pretrain'] = bench_pretrain(args.sizes, args.batch, peak)
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
