"""Our ViT as a drop-in for ``mmpretrain.VisionTransformer`` in other OpenMMLab projects.

The reference user: mmpose 1.3.2's ViTPose-B config with only ``model.backbone.type`` changed.
The layer-decay constructors of mmpretrain, mmdet, mmseg and mmpose must treat our backbone as
they treat mmpretrain's own ViT built from the same arguments.
"""
import copy
import os.path as osp

import mmpose
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData
from mmpose.structures import PoseDataSample

from lomar_transfer.models.backbones.converters import convert_mmpretrain
from lomar_transfer.models.backbones import VisionTransformer

VITPOSE_B = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', 'body_2d_keypoint',
                     'topdown_heatmap', 'coco', 'td-hm_ViTPose-base_8xb64-210e_coco-256x192.py')
OURS, THEIRS = 'lomar_transfer.VisionTransformer', 'mmpretrain.VisionTransformer'
# mmpose's constructor (layer_decay_optim_wrapper.py:7-17) and mmseg's BEiT/MAE one parse the
# layer of 'backbone.layers.N.*': our block list has mmpretrain's name, 'layers'


def vitpose_model(backbone_type=OURS):
    cfg = Config.fromfile(VITPOSE_B)  # also imports mmpose's layer-decay constructor
    assert cfg.model.backbone.type == THEIRS
    cfg.model.backbone.type = backbone_type  # nothing else changed
    init_default_scope(cfg.default_scope)
    from mmpose.registry import MODELS
    return cfg, MODELS.build(cfg.model)


def lr_by_name(wrapper):
    """{parameter name: lr}; mmpretrain's groups hold one 'param_name', the others 'param_names'."""
    return {name: g['lr'] for g in wrapper.optimizer.param_groups
            for name in g.get('param_names', [g.get('param_name')])}


def in_our_names(by_name):
    """{mmpretrain ViT model's parameter name: x} -> {our name: x} (the converters' rules)."""
    backbone, _ = convert_mmpretrain(by_name)
    return {**{k: v for k, v in by_name.items() if not k.startswith('backbone.')},
            **{'backbone.' + k: v for k, v in backbone.items()}}


def test_vitpose_config_trains_one_step():
    torch.manual_seed(0)
    cfg, model = vitpose_model()
    vit = model.backbone
    assert (vit.embed_dims, vit.depth, vit.grid_hw) == (768, 12, (16, 12))
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)  # mmpose's layer-decay constructor
    h, w = cfg.codec.input_size[::-1]
    hm_h, hm_w = cfg.codec.heatmap_size[::-1]
    samples = []
    for _ in range(2):
        s = PoseDataSample(metainfo=dict(input_size=cfg.codec.input_size))
        s.gt_fields = PixelData(heatmaps=torch.rand(17, hm_h, hm_w))
        s.gt_instance_labels = InstanceData(keypoint_weights=torch.ones(1, 17))
        samples.append(s)
    data = dict(inputs=[torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for _ in samples],
                data_samples=samples)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    got_grad = set()  # drop path (0.3) may skip a branch for the whole batch: no gradient there
    for n, p in model.named_parameters():
        p.register_hook(lambda g, n=n: got_grad.add(n) if g.abs().sum() > 0 else None)
    model.train()
    log_vars = model.train_step(data, wrapper)
    assert torch.isfinite(log_vars['loss'])
    still = [n for n, p in model.named_parameters() if n in got_grad and torch.equal(p, before[n])]
    assert not still, f'not updated: {still[:5]}'
    # the gradient reached every block and the patch embedding
    assert {n.split('.')[2] for n in got_grad if n.startswith('backbone.layers.')} == {
        str(i) for i in range(12)}
    assert 'backbone.patch_embed.proj.weight' in got_grad


@pytest.mark.parametrize('constructor', [
    pytest.param(None, id='mmpose'),  # the config's own: mmpose's LayerDecayOptimWrapperConstructor
    pytest.param('lomar_transfer.LayerDecayOptimWrapperConstructor', id='ours')])
def test_vitpose_config_gets_one_lr_per_layer(constructor):
    """ViTPose-B with our backbone: every parameter gets its layer's lr, exactly the lr that the
    same constructor gives mmpretrain's ViT in the original config."""
    lrs = {}
    for backbone_type in (OURS, THEIRS):
        cfg, model = vitpose_model(backbone_type)
        if constructor:  # the same paramwise_cfg, our constructor
            cfg.optim_wrapper.constructor = constructor
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        assert sum(len(g['params']) for g in wrapper.optimizer.param_groups) == len(
            list(model.parameters()))
        lrs[backbone_type] = lr_by_name(wrapper)
        if constructor is None:  # one group per layer and decay: 0, 1..12, 13 x (no) decay
            assert len(wrapper.optimizer.param_groups) == 2 * 14
        del model, wrapper
    base_lr = cfg.optim_wrapper.optimizer.lr
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    depth = cfg.optim_wrapper.paramwise_cfg.num_layers
    ours = lrs[OURS]
    for name, lr in ours.items():
        if name.startswith(('backbone.patch_embed.', 'backbone.cls_token', 'backbone.pos_embed')):
            layer = 0
        elif name.startswith('backbone.layers.'):
            layer = int(name.split('.')[2]) + 1
        else:  # the final norm and the head
            assert name.startswith(('backbone.norm.', 'head.')), name
            layer = depth + 1
        assert lr == pytest.approx(base_lr * rate**(depth + 1 - layer), rel=1e-12), name
    assert len(set(ours.values())) == depth + 2 == 14
    per_block = [{lr for n, lr in ours.items() if n.startswith(f'backbone.layers.{i}.')}
                 for i in range(depth)]
    assert all(len(lr) == 1 for lr in per_block) and len(set.union(*per_block)) == depth
    theirs = in_our_names(lrs[THEIRS])
    theirs.pop('backbone.pos_embed')  # their learned table is our fixed one: not a parameter
    assert ours == theirs  # the same names, the same lr: bit for bit


# the ViTPose backbone arguments, on a small model
DEPTH = 4
VIT = dict(arch=dict(embed_dims=64, num_layers=DEPTH, num_heads=4, feedforward_channels=128),
           img_size=(64, 48), patch_size=16, qkv_bias=True, drop_path_rate=0.1,
           with_cls_token=False, out_type='featmap', patch_cfg=dict(padding=2))


def classifier(backbone_type):
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type=backbone_type, **VIT),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))


def test_same_arguments_same_shapes_as_mmpretrain():
    ours, theirs = classifier(OURS).backbone, classifier(THEIRS).backbone
    x = torch.rand(2, 3, 64, 48)
    assert ours(x)[0].shape == theirs(x)[0].shape == (2, 64, 4, 3)
    learned = VisionTransformer(**VIT, pos_embed='learned')
    assert learned.pos_embed.shape == theirs.pos_embed.shape  # their checkpoints fit ours
    assert sum(p.numel() for p in learned.parameters()) == sum(
        p.numel() for p in theirs.parameters())  # the arch dict in mmpretrain's key names


def test_non_square_grid_positions():
    vit = VisionTransformer(**VIT)  # 64x48 -> 4 rows of 3 tokens
    pos = vit.abs_pos_embed(vit.grid_hw)[0]
    half = vit.embed_dims // 2  # MAE order: column half, then row half
    assert torch.equal(pos[1, :half], pos[4, :half])  # column 1, rows 0 and 1
    assert torch.equal(pos[1, half:], pos[2, half:])  # row 0, columns 1 and 2
    assert not torch.equal(pos[1, half:], pos[4, half:])


LAYER_WISE = dict(num_layers=DEPTH, decay_rate=0.75, decay_type='layer_wise')
CONSTRUCTORS = {
    'mmpretrain': ('mmpretrain.LearningRateDecayOptimWrapperConstructor',
                   dict(layer_decay_rate=0.75)),
    'mmdet': ('mmdet.LearningRateDecayOptimizerConstructor', LAYER_WISE),
    'mmseg': ('mmseg.LearningRateDecayOptimizerConstructor', LAYER_WISE),
    'mmseg-beit': ('mmseg.LayerDecayOptimizerConstructor',
                   dict(num_layers=DEPTH, layer_decay_rate=0.75)),
    # registered in mmengine's root registry (layer_decay_optim_wrapper.py:20)
    'mmpose': ('mmengine.LayerDecayOptimWrapperConstructor',
               dict(num_layers=DEPTH, layer_decay_rate=0.75)),
}


def decay_outcome(backbone_type, constructor, paramwise_cfg):
    """{parameter name (ours): lr}, or the error the constructor raises."""
    import mmpose.engine.optim_wrappers.layer_decay_optim_wrapper  # noqa: F401
    model = classifier(backbone_type)
    try:
        wrapper = build_optim_wrapper(model, dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05), constructor=constructor,
            paramwise_cfg=copy.deepcopy(paramwise_cfg)))  # mmseg's pops keys from it
    except NotImplementedError as e:  # by backbone class name, ConvNeXt (mmdet, mmseg) or BEiT /
        # MAE (mmseg) only: mmdet layer_decay_optimizer_constructor.py:119-124, mmseg :142-151
        return type(e).__name__
    lrs = lr_by_name(wrapper)
    if backbone_type == THEIRS:
        lrs = in_our_names(lrs)  # their names -> ours
        assert len(set(lrs.values())) == DEPTH + 2  # a real per-layer decay to compare with
    return lrs


@pytest.mark.parametrize('name', list(CONSTRUCTORS))
def test_layer_decay_constructors_treat_ours_as_mmpretrains(name):
    ours, theirs = (decay_outcome(t, *CONSTRUCTORS[name]) for t in (OURS, THEIRS))
    if isinstance(theirs, str):
        assert ours == theirs
        return
    theirs.pop('backbone.pos_embed')  # their learned table is our fixed one: not a parameter
    assert ours == pytest.approx(theirs)
