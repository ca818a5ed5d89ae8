"""The published transfer protocols, as our configs build them, compute what the official code
computes: ViTDet's backbone (detectron2, re-created in ``official_models.py``) and mmseg's own MAE
backbone (the installed mmseg, run as is), with every parameter non-zero; and their optimizers
and schedules give each parameter the official learning rate and weight decay."""
import importlib.util
import math
import re
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope

from conftest import REPO
from lomar_transfer.models import SimpleFeaturePyramid, VisionTransformer
from lomar_transfer.models.backbones.relative_position import get_rel_pos
from official_models import OfficialViT, ViTDetBackbone, perturb_, vitdet_rel_pos

ARCH = dict(embed_dims=64, depth=4, num_heads=4, mlp_hidden_dims=256)
VITDET = 'configs/mae/mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py'
MMSEG = 'configs/mae/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'
CAE_COCO = 'configs/mae/mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py'
CAE_ADE = 'configs/cae/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py'


def backbone_cfg(path, **override):
    """The config's backbone settings, shrunk to ``ARCH``."""
    cfg = Config.fromfile(REPO / path).model.backbone.to_dict()
    cfg.pop('type')
    cfg.update(arch=ARCH, drop_path_rate=0., init_cfg=None, **override)
    return cfg


def mae_release(tmp_path, img=112):
    """An official MAE release file ({'model': ...}, official names), every parameter random."""
    official = perturb_(OfficialViT('mae', depth=4, img=img))
    path = tmp_path / 'mae_pretrain.pth'
    torch.save({'model': OrderedDict(official.state_dict())}, path)
    return path, official


@pytest.mark.parametrize('q, k, length', [(14, 14, 27), (8, 8, 19), (5, 9, 17), (9, 5, 27)])
def test_get_rel_pos_matches_detectron2(q, k, length):
    table = torch.randn(length, 8)
    assert torch.allclose(get_rel_pos(q, k, table), vitdet_rel_pos(q, k, table), atol=1e-6)


def test_window_and_global_blocks_have_their_own_tables():
    vit = VisionTransformer(**backbone_cfg(VITDET, global_attn_indices=(1, 3)))
    # at 1024 px: window blocks 2*14-1 offsets, global blocks 2*64-1; all start at zero
    assert [tuple(b.attn.rel_pos_h.shape) for b in vit.layers] == [(27, 16), (127, 16)] * 2
    assert all(b.attn.rel_pos_w.shape == b.attn.rel_pos_h.shape for b in vit.layers)
    assert all(b.attn.rel_pos_h.abs().sum() == 0 for b in vit.layers)


@pytest.mark.parametrize('size', [160, 128])
def test_vitdet_backbone_equals_detectron2(tmp_path, size):
    """MAE release -> our ViTDet-protocol backbone and detectron2's ViT: same features, with
    trained (random) relative position tables, windows padded (10 % 4), the pretrained 7x7
    table resampled to the input in every forward, and at 128 px the global blocks' tables
    (made for a 10x10 grid) resized to 8x8 by linear interpolation."""
    path, official = mae_release(tmp_path)
    ref = ViTDetBackbone(dim=64, depth=4, heads=4, img=160, pretrain_img=112, window=4,
                         global_blocks=(1, 3))
    missing = ref.load_state_dict(official.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(f'blocks.{i}.attn.rel_pos_{a}' for i in range(4)
                                     for a in 'hw')  # detectron2's names
    ours = VisionTransformer(**backbone_cfg(VITDET, img_size=160, pretrain_img_size=112,
                                            window_size=4, global_attn_indices=(1, 3)))
    ours.pretrained = str(path)
    ours.init_weights()
    perturb_(ref, seed=1)  # trained tables and weights: the same tensors into ours
    ours_sd = ours.state_dict()
    for k, v in ref.state_dict().items():  # detectron2's blocks.N. are our layers.N.
        ours_sd[re.sub(r'^blocks\.', 'layers.', k)] = (
            v[:, 1:] if k == 'pos_embed' else v)  # ViTDet keeps an unused class slot
    ours.load_state_dict(ours_sd)
    assert all(b.attn.rel_pos_h.abs().min() > 0 for b in ours.layers)
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    with torch.no_grad():  # float64: any difference left is a difference of computation
        want, got = ref.double()(x), ours.double().eval()(x)[-1]
    assert got.shape == want.shape == (2, 64, size // 16, size // 16)
    assert (got - want).abs().max() < 1e-9


def test_vitdet_backbone_starts_from_the_pretrained_table_and_reports_new_tables(tmp_path):
    from lomar_transfer.models.backbones.pretrained import load_pretrained_backbone
    path, official = mae_release(tmp_path)
    vit = VisionTransformer(**backbone_cfg(VITDET, img_size=160, pretrain_img_size=112,
                                           window_size=4, global_attn_indices=(1, 3)))
    vit.init_weights()
    result = load_pretrained_backbone(vit, str(path))
    assert torch.equal(vit.pos_embed, official.pos_embed[:, 1:])  # class slot dropped, learned
    assert vit.pos_embed.requires_grad
    assert sorted(result.missing_keys) == sorted(f'layers.{i}.attn.rel_pos_{a}'
                                                 for i in range(4) for a in 'hw')


def mmseg_mae(tmp_path, official, img):
    """mmseg's own MAE backbone on the release, converted by mmseg's own beit2mmseg.py."""
    spec = importlib.util.spec_from_file_location(
        'beit2mmseg', next(REPO.glob('.venv/lib/python3*/site-packages/mmseg/.mim/tools/'
                                     'model_converters/beit2mmseg.py')))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    path = tmp_path / 'mae_mmseg.pth'
    torch.save({'state_dict': tool.convert_beit(official.state_dict())}, path)
    from mmseg.models.backbones import MAE
    model = MAE(img_size=(img, img), patch_size=16, embed_dims=64, num_layers=4, num_heads=4,
                mlp_ratio=4, out_indices=[0, 1, 2, 3], init_values=1.0,
                norm_cfg=dict(type='LN', eps=1e-6),
                init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    return model


@pytest.mark.parametrize('img', [128, 96])
def test_mmseg_protocol_equals_mmseg_mae_backbone(tmp_path, img):
    """MAE release -> our ADE20K (mmseg protocol) backbone and mmseg's MAE backbone: same
    pretrained table resampled once on load (7x7 -> 8x8 or 6x6, class slot kept), then, with
    the relative position bias tables and LayerScales trained (random), the same features."""
    path, official = mae_release(tmp_path)
    theirs = mmseg_mae(tmp_path, official, img)
    theirs.eval()  # (mmseg's train() returns None)
    ours = VisionTransformer(**backbone_cfg(MMSEG, img_size=img, out_indices=(0, 1, 2, 3)))
    ours.pretrained = str(path)
    ours.init_weights()
    assert torch.allclose(ours.pos_embed, theirs.pos_embed, atol=1e-6)  # before training
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for i, (a, b) in enumerate(zip(theirs.layers, ours.layers)):
            for src, dst in ((a.attn.relative_position_bias_table,
                              b.attn.relative_position_bias_table),
                             (a.gamma_1, b.ls1.gamma), (a.gamma_2, b.ls2.gamma)):
                src.copy_(torch.randn(src.shape, generator=g) * 0.3 + (1 if src.ndim == 1 else 0))
                dst.copy_(src)
        theirs.pos_embed.add_(torch.randn(theirs.pos_embed.shape, generator=g) * 0.1)
        ours.pos_embed.copy_(theirs.pos_embed)
        x = torch.randn(2, 3, img, img)
        want, got = theirs(x), ours.eval()(x)
    assert len(got) == len(want) == 4
    assert max((a - b).abs().max().item() for a, b in zip(got, want)) < 1e-4


def test_learned_table_of_our_fixed_table_checkpoint(tmp_path):
    """Our MAE checkpoints compute their sin-cos table and do not store it: a learned table
    starts from it at the pretraining grid, resampled as mmseg resamples a stored one."""
    from lomar_transfer.models import MAEPretrainViT
    from mmengine.runner import save_checkpoint
    pre = MAEPretrainViT(arch=ARCH, patch_size=16, img_size=112)
    path = tmp_path / 'ours.pth'
    save_checkpoint({f'backbone.{k}': v for k, v in pre.state_dict().items()}, str(path))
    _, official = mae_release(tmp_path)
    want = mmseg_mae(tmp_path, official, 128).pos_embed  # from the release's stored table
    vit = VisionTransformer(**backbone_cfg(MMSEG, img_size=128, pretrain_img_size=112))
    vit.pretrained = str(path)
    vit.init_weights()
    assert torch.allclose(vit.pos_embed, want, atol=1e-5)


def test_layer_norm_2d_is_a_channel_layer_norm():
    from mmcv.cnn import ConvModule
    cfg = Config.fromfile(REPO / VITDET)
    with DefaultScope.overwrite_default_scope('mmdet'):
        conv = ConvModule(8, 8, 1, norm_cfg=cfg.norm_cfg, act_cfg=None)
    norm = conv.ln
    assert norm.eps == 1e-6 and not isinstance(norm, torch.nn.LayerNorm)
    with torch.no_grad():
        norm.weight.normal_(), norm.bias.normal_()
    x = torch.randn(2, 8, 5, 3)
    u, s = x.mean(1, keepdim=True), ((x - x.mean(1, keepdim=True))**2).mean(1, keepdim=True)
    want = norm.weight[:, None, None] * (x - u) / torch.sqrt(s + 1e-6) + norm.bias[:, None, None]
    assert torch.allclose(norm(x), want, atol=1e-5)


def test_simple_feature_pyramid_layout():
    fpn = SimpleFeaturePyramid(in_channels=64, out_channels=32)
    fpn.init_weights()
    outs = fpn([torch.randn(1, 64, 8, 8)])
    assert [tuple(o.shape) for o in outs] == [(1, 32, 32, 32), (1, 32, 16, 16), (1, 32, 8, 8),
                                               (1, 32, 4, 4), (1, 32, 2, 2)]
    # ViTDet halves the channels per upsampling step: 64 -> 32 -> 16 at stride 4
    assert [m.out_channels for m in fpn.stages[0][0] if isinstance(m, torch.nn.ConvTranspose2d)] \
        == [32, 16]
    assert fpn.stages[2][1].conv.bias is None  # norm after each conv, no bias


def model_and_groups(path):
    """The config's model and, per parameter name, (lr, weight decay) relative to the base."""
    cfg = Config.fromfile(REPO / path)
    cfg.model.backbone.init_cfg = None
    cfg.optim_wrapper.type = 'OptimWrapper'  # AMP needs a GPU; the groups are the same
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base = cfg.optim_wrapper.optimizer
    return model, {n: (g['lr'] / base.lr, g['weight_decay'] / base.weight_decay)
                   for g in wrapper.optimizer.param_groups for n in [g['param_name']]}


def groups(path):
    return model_and_groups(path)[1]


def test_vitdet_learning_rates_and_weight_decay():
    g = groups(VITDET)
    lr, wd = (lambda n: g[n][0]), (lambda n: g[n][1])
    assert math.isclose(lr('backbone.patch_embed.proj.weight'), 0.7**13)
    assert math.isclose(lr('backbone.pos_embed'), 0.7**13)
    assert math.isclose(lr('backbone.layers.11.attn.rel_pos_h'), 0.7)
    assert math.isclose(lr('backbone.layers.0.norm1.weight'), 0.7**12)
    assert lr('roi_head.bbox_head.fc_cls.weight') == lr('neck.stages.0.1.ln.weight') == 1
    # detectron2: no decay only for torch LayerNorms (the blocks') and pos_embed
    assert wd('backbone.layers.0.norm1.weight') == wd('backbone.pos_embed') == 0
    assert wd('backbone.layers.0.attn.qkv.bias') == wd('backbone.layers.0.attn.rel_pos_h') == 1
    assert wd('neck.stages.0.1.ln.weight') == wd('roi_head.bbox_head.shared_convs.0.ln.bias') == 1


@pytest.mark.slow
def test_mmseg_and_cae_learning_rates_and_weight_decay():
    g = groups(MMSEG)
    assert math.isclose(g['backbone.pos_embed'][0], 0.65**13)
    assert math.isclose(g['backbone.layers.11.ls1.gamma'][0], 0.65)
    assert g['decode_head.conv_seg.weight'][0] == 1
    # mmseg decays pos_embed, cls_token and the bias tables (its name test sees full names)
    assert g['backbone.pos_embed'][1] == g['backbone.cls_token'][1] == 1
    assert g['backbone.layers.3.attn.relative_position_bias_table'][1] == 1
    assert g['backbone.layers.3.ls1.gamma'][1] == g['backbone.layers.3.attn.qkv.bias'][1] == 0
    cae = groups(CAE_ADE)
    assert cae['backbone.pos_embed'] == (0, 0)  # CAE keeps the resampled table frozen
    assert cae['backbone.layers.3.attn.q_bias'][1] == 0
    coco = groups(CAE_COCO)
    assert math.isclose(coco['backbone.layers.11.attn.qkv.weight'][0], 0.75)
    assert coco['backbone.pos_embed'] == (0, 0)


FINETUNE = 'configs/{}/vit-base-p16_8xb128-coslr-100e_in1k.py'


def official_finetune_rule(name, ndim, depth=12, rate=0.65):
    """(lr scale, decays) of a parameter in the official ImageNet fine-tuning, on our names.
    github facebookresearch/mae util/lr_decay.py:24-31 (no decay: 1-D or in the model's
    no_weight_decay list, pos_embed / cls_token), :63-76 (layer ids: embeddings 0, block i i+1,
    the rest depth+1; scale rate ** (depth + 1 - id)); LoMaR main_finetune_lomar.py runs the same
    function; lxtGH/CAE furnace/optim_factory.py:24-35,56 (the same ids, plus names ending in
    '.bias', which are 1-D anyway; BEiT's relative position tables decay)."""
    short = name[len('backbone.'):] if name.startswith('backbone.') else None
    if short is not None and short.startswith(('cls_token', 'pos_embed', 'patch_embed')):
        layer = 0
    elif short is not None and short.startswith('layers.'):
        layer = int(short.split('.')[1]) + 1
    else:
        layer = depth + 1
    decays = not (ndim == 1 or name.endswith('.bias') or short in ('pos_embed', 'cls_token'))
    return rate ** (depth + 1 - layer), decays


@pytest.mark.parametrize('method', ['lomar', 'mae', 'cae'])
@pytest.mark.slow
def test_finetune_groups_follow_the_official_rule_parameter_by_parameter(method):
    model, got = model_and_groups(FINETUNE.format(method))
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert got.keys() == trained.keys()
    wrong = {}
    for n, p in trained.items():
        scale, decays = official_finetune_rule(n, p.ndim)
        if not (math.isclose(got[n][0], scale) and got[n][1] == float(decays)):
            wrong[n] = (got[n], (scale, float(decays)))
    assert not wrong, wrong
    names = ' '.join(trained)
    # what each method fine-tunes: MAE its learned table, CAE its BEiT tables, LoMaR its RPE
    assert {'lomar': 'lookup_table_weight', 'mae': 'backbone.pos_embed',
            'cae': 'relative_position_bias_table'}[method] in names
    assert Config.fromfile(REPO / FINETUNE.format(method)).optim_wrapper.type == 'AmpOptimWrapper'


def test_finetune_cosine_floor_is_min_lr_times_each_groups_scale():
    """MAE util/lr_sched.py:17-21: lr = min_lr + (lr - min_lr) * cosine, then x lr_scale, so
    a group at scale s ends at 1e-6 * s (mmengine's eta_min would floor every group at 1e-6)."""
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(REPO / FINETUNE.format('mae'))
    lr = cfg.optim_wrapper.optimizer.lr
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = torch.optim.AdamW([dict(params=[params[0]], lr=lr),
                             dict(params=[params[1]], lr=lr * 0.65 ** 13)], lr=lr)
    cosine = dict(cfg.param_scheduler[1], by_epoch=False, begin=0, end=100, T_max=50)
    cosine.pop('convert_to_iter_based')
    sched = PARAM_SCHEDULERS.build(dict(cosine, optimizer=opt))
    for _ in range(50):  # the bottom of the cosine
        opt.step()
        sched.step()
    floors = [g['lr'] for g in opt.param_groups]
    assert math.isclose(floors[0], 1e-6, rel_tol=1e-6)
    assert math.isclose(floors[1], 1e-6 * 0.65 ** 13, rel_tol=1e-6)


TORCH_NORMS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm, torch.nn.LayerNorm,
               torch.nn.modules.instancenorm._InstanceNorm, torch.nn.LocalResponseNorm)


def dense_layer(name, depth=12):
    """The layer id every dense protocol's code gives a parameter, on our names: embeddings 0,
    block i i+1, the rest (heads, necks) depth+1 (detectron2 ViTDet get_vit_lr_decay_rate,
    mmseg / CAE get_layer_id_for_vit)."""
    short = name[len('backbone.'):] if name.startswith('backbone.') else None
    if short is None:
        return depth + 1
    if short.startswith(('cls_token', 'pos_embed', 'patch_embed', 'mask_token')):
        return 0
    if short.startswith('layers.'):
        return int(short.split('.')[1]) + 1
    return depth + 1


def mmcv_rule(name, param, module):
    """mmseg's and CAE's layer-decay constructors: no decay for 1-D tensors, names ending in
    '.bias', and the names 'pos_embed' / 'cls_token', which never match: they see the whole
    model's names ('backbone.pos_embed')."""
    return not (param.ndim == 1 or name.endswith('.bias') or name in ('pos_embed', 'cls_token'))


# protocol: (layer decay, decays(name, param, module)); sources: detectron2 configs/common/
# optim.py:18-28 + solver/build.py get_default_optimizer_params (weight_decay_norm=0 for torch's
# norm modules, the pos_embed override; biases and D2's own channel LayerNorm decay); mmseg
# engine/optimizers/layer_decay_optimizer_constructor.py; CAE mmcv_custom/
# layer_decay_optimizer_constructor.py:54 (detection) / :43 (segmentation)
DENSE_RULES = {
    'mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py': (0.7, lambda name, param, module: not (
        isinstance(module, TORCH_NORMS) or name.endswith('pos_embed'))),
    'upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py': (0.65, mmcv_rule),
    'mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py': (0.75, mmcv_rule),
    'upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py': (0.65, mmcv_rule),
}


@pytest.mark.parametrize('leaf', sorted(DENSE_RULES))
@pytest.mark.parametrize('method', ['lomar', 'mae', 'cae'])
@pytest.mark.slow
def test_dense_groups_follow_the_official_rule_parameter_by_parameter(method, leaf):
    """Every parameter of every dense leaf: its lr scale and whether it decays, as the official
    code of the protocol decides. CAE's frozen table (skipped by CAE's constructor) trains at
    lr 0 without decay here."""
    model, got = model_and_groups(f'configs/{method}/{leaf}')
    owner = {f'{m}.{n}' if m else n: mod for m, mod in model.named_modules()
             for n, _ in mod.named_parameters(recurse=False)}
    rate, decays = DENSE_RULES[leaf]
    wrong = {}
    for name, param in model.named_parameters():
        want = (rate ** (13 - dense_layer(name)), float(decays(name, param, owner[name])))
        if leaf.endswith('_cae.py') and name == 'backbone.pos_embed':
            want = (0., 0.)  # frozen in CAE
        if not (math.isclose(got[name][0], want[0], abs_tol=1e-12) and got[name][1] == want[1]):
            wrong[name] = (got[name], want)
    assert not wrong, wrong


def test_cae_segmentation_schedule_multiplies_warmup_and_poly():
    """mmcv 1.x (CAE's code): lr = base * (1 - t/160000) * warm-up factor while t < 1500."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(REPO / CAE_ADE)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = build_optim_wrapper(torch.nn.Linear(1, 1), dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=3e-4)))
    opt.optimizer.param_groups[0]['params'] = [param]
    scheds = [PARAM_SCHEDULERS.build(dict(s, optimizer=opt)) for s in cfg.param_scheduler]
    for t in range(160000):
        want = 3e-4 * (1 - t / 160000) * (1 - (1 - t / 1500) * (1 - 1e-6) if t < 1500 else 1)
        if t in (0, 1, 700, 1499, 1500, 3000, 80000, 159999):
            assert math.isclose(opt.optimizer.param_groups[0]['lr'], want, rel_tol=1e-9), t
        for s in scheds:
            s.step()


def det_batch(size):
    from mmdet.testing import demo_mm_inputs
    data = demo_mm_inputs(1, (3, *size), num_items=[3], num_classes=80, with_mask=True)
    return dict(inputs=data['inputs'], data_samples=data['data_samples'])


def seg_batch(size, n=2):  # two images: the pooling branch's BatchNorm needs them
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, *size)))
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 256, (3, *size), dtype=torch.uint8) for _ in range(n)],
                data_samples=samples)


@pytest.mark.parametrize('path, batch', [
    (VITDET, lambda: det_batch((1024, 1024))),
    (CAE_COCO, lambda: det_batch((800, 1216))),
    (MMSEG, lambda: seg_batch((512, 512))),
    (CAE_ADE, lambda: seg_batch((512, 512))),
])
@pytest.mark.slow
def test_protocol_config_trains_a_step_at_task_size(path, batch):
    """Each protocol's ViT-B/16 model, as configured, takes one optimizer step on one image of
    the protocol's input size; the relative position tables (zero at start) move."""
    cfg = Config.fromfile(REPO / path)
    cfg.model.backbone.init_cfg = None
    cfg.optim_wrapper.type = 'OptimWrapper'
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        model.init_weights()
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        model.train()
        losses = model.train_step(batch(), wrapper)
    assert all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)
    attn = model.backbone.layers[-1].attn
    tables = [p for p in (getattr(attn, 'rel_pos_h', None),
                          getattr(attn, 'relative_position_bias_table', None)) if p is not None]
    assert all(t.abs().sum() > 0 for t in tables)


PRETRAIN = {'lomar': 'LoMaRViT', 'mae': 'MAEPretrainViT', 'cae': 'CAEPretrainViT'}
LEAVES = ('mask-rcnn_vit-base-p16_16xb4-lsj-100e_coco.py',
          'upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py',
          'mask-rcnn_vit-base-p16_16xb2-ms-1x_coco_cae.py',
          'upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py')


@pytest.mark.parametrize('method', ['lomar', 'mae', 'cae'])
@pytest.mark.parametrize('leaf', LEAVES)
@pytest.mark.slow
def test_each_protocol_loads_each_methods_pretraining(tmp_path, method, leaf):
    """The suite's own pretraining checkpoint of each method loads into each protocol's backbone
    (as the method's leaf configures it): everything the pretraining trained is loaded, only
    the protocol's new tensors start anew, and a learned table starts from the method's fixed
    one (CAE's in CAE's channel order)."""
    import lomar_transfer.models as models
    from lomar_transfer.models.backbones.pretrained import load_pretrained_backbone
    from lomar_transfer.models.backbones.pos_embed import sincos_pos_embed_2d
    from mmengine.runner import save_checkpoint
    pre = perturb_(getattr(models, PRETRAIN[method])(arch=ARCH, patch_size=16, img_size=112))
    path = tmp_path / 'pretrain.pth'
    save_checkpoint({'state_dict': {f'backbone.{k}': v for k, v in pre.state_dict().items()}},
                    str(path))
    cfg = backbone_cfg(f'configs/{method}/{leaf}', img_size=128, pretrain_img_size=112)
    cfg.update(window_size=4 if cfg.get('window_size') else 0, global_attn_indices=(1, 3))
    vit = VisionTransformer(**cfg)
    vit.init_weights()
    result = load_pretrained_backbone(vit, str(path))
    new = {k.split('.')[-1] if k.startswith('layers.') else k for k in result.missing_keys}
    assert new <= {'rel_pos_h', 'rel_pos_w', 'relative_position_bias_table', 'gamma'}, new
    ours = vit.state_dict()
    for k, v in pre.state_dict().items():
        if k in ours and k != 'pos_embed':
            assert torch.equal(ours[k], v), k  # every trained tensor arrives
    if vit.pos_embed_type == 'learned':
        order = 'cae' if method == 'cae' else 'mae'
        table = sincos_pos_embed_2d((7, 7), 64, order=order)
        h, w = vit.pos_grid_hw
        # mmseg / ViTDet: the 7x7 table bicubic-resampled to the learned table's grid
        want = F.interpolate(table.reshape(1, 7, 7, 64).permute(0, 3, 1, 2), size=(h, w),
                             mode='bicubic', align_corners=False).permute(0, 2, 3, 1)
        start = vit.pos_embed[0, vit.num_prefix_tokens:]
        assert torch.allclose(start, want.reshape(h * w, 64), atol=1e-5)
        assert vit.num_prefix_tokens == 0 or vit.pos_embed[0, 0].abs().max() == 0
    if method != 'cae' and 'ls1.gamma' in str(result.missing_keys):  # LayerScale is new
        want = 1.0 if leaf.startswith('upernet') and not leaf.endswith('_cae.py') else 0.1
        assert all(torch.all(b.ls1.gamma == want) for b in vit.layers)


def test_lsj_crop_draws_one_offset_as_detectron2():
    """detectron2 FixedSizeCrop (augmentation_impl.py:338-341): offset = round(margin * u) with
    one u for both sides; mmdet's RandomCrop draws two. Same numpy stream, same crop."""
    import numpy as np
    from mmengine.registry import TRANSFORMS
    cfg = Config.fromfile(REPO / VITDET)
    step = next(t for t in cfg.train_dataloader.dataset.dataset.pipeline if 'Crop' in t.type)
    assert step.type == 'lomar_transfer.FixedSizeCrop' and step.recompute_bbox
    crop = TRANSFORMS.build(dict(step, crop_size=(100, 100)))
    img = np.zeros((300, 700, 3), np.uint8)
    for seed in range(20):
        np.random.seed(seed)
        out = crop(dict(img=img.copy(), img_shape=img.shape[:2]))
        np.random.seed(seed)
        want = np.round(np.multiply((200, 600), np.random.uniform(0.0, 1.0))).astype(int)
        assert out['img'].shape[:2] == (100, 100)
        got = -out['homography_matrix'][1, 2], -out['homography_matrix'][0, 2]
        assert tuple(int(v) for v in got) == tuple(want)
        assert abs(got[0] / 200 - got[1] / 600) <= 1 / 200  # on the diagonal


@pytest.mark.parametrize('path, steps', [(VITDET, 250), (CAE_COCO, 500)])
def test_coco_warmup_reaches_the_full_rate_at_the_official_iteration(path, steps):
    """detectron2's WarmupParamScheduler (ViTDet) and mmcv 1.x's linear warm-up (CAE): at
    iteration t < W the factor is 0.001 + 0.999 t / W, 1 from t = W on."""
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(REPO / path)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = PARAM_SCHEDULERS.build(dict(cfg.param_scheduler[0], optimizer=opt))
    for t in range(steps + 3):
        want = 0.001 + 0.999 * min(t, steps) / steps
        assert math.isclose(opt.param_groups[0]['lr'], want, rel_tol=1e-9), t
        opt.step()
        sched.step()


@pytest.mark.parametrize('path, train_max', [(VITDET, 1000), (CAE_COCO, 2000)])
def test_rpn_keeps_the_official_number_of_proposals(path, train_max):
    """detectron2 mask_rcnn_fpn.py:50-51 (2000 per level before NMS, 1000 per image after in
    training; 1000 / 1000 in test); CAE _base_/models/mask_rcnn_vit_fpn.py:91-96 keeps 2000
    per image in training, 107-113 1000 in test."""
    model = Config.fromfile(REPO / path).model
    train, test = model.train_cfg.rpn_proposal, model.test_cfg.rpn
    assert (train.nms_pre, train.max_per_img) == (2000, train_max)
    assert (test.nms_pre, test.max_per_img) == (1000, 1000)
