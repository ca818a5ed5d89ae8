"""Weight conversion: every tensor of an official checkpoint lands where it belongs.

The official state dicts are written from the official key lists (read from each release's model
code, cited at each template) or built by the official modules (timm, mmpretrain), with distinct
random values in every tensor: a converter that puts one key in another's place (gamma_1 /
gamma_2, q_bias / v_bias, ln1 / ln2, ...) fails, which tensors at their initial values (layer
scales all 0.1, biases 0, norms 1) would not show."""
import logging

import pytest
import torch

from lomar_transfer.fileio import CheckpointError
from lomar_transfer.models.backbones.converters import convert_to_lomar_vit, detect_source
from lomar_transfer.models.backbones.pretrained import load_pretrained_backbone
from lomar_transfer.models.backbones import LoMaRViT, VisionTransformer

# a small ViT: width, heads, MLP width, patch, grid side, depth; decoder width of MAE
D, HEADS, MLP, P, GRID, DEPTH, DEC = 32, 2, 128, 8, 4, 2, 16
N = GRID * GRID
SMALL = dict(arch=dict(embed_dims=D, depth=DEPTH, num_heads=HEADS, mlp_hidden_dims=MLP),
             img_size=GRID * P, patch_size=P)
TOL = dict(atol=1e-5, rtol=0)


def ours(**kwargs):
    cfg = dict(SMALL, pos_embed='learned', out_type='raw')
    cfg.update(kwargs)
    return VisionTransformer(**cfg).eval()


# ---------------------------------------------------------------- official key templates
# Entries (official key, our key or None when the converter must drop it, shape).
def kept(name, shape, as_=None):
    """``name.weight`` / ``name.bias`` of a Linear, LayerNorm or Conv2d, kept as ``as_``."""
    as_ = as_ or name
    return [(f'{name}.weight', f'{as_}.weight', shape), (f'{name}.bias', f'{as_}.bias', shape[:1])]


def dropped(name, shape):
    return [(k, None, s) for k, _, s in kept(name, shape)]


def timm_block(d=D, mlp=MLP):
    """timm ``Block`` (timm 0.3 for MAE: models_mae.py / models_vit.py import it)."""
    return [*kept('norm1', (d, )), *kept('attn.qkv', (3 * d, d)), *kept('attn.proj', (d, d)),
            *kept('norm2', (d, )), *kept('mlp.fc1', (mlp, d)), *kept('mlp.fc2', (d, mlp))]


# LoMaR vision_transformer_irpe.py Attention: timm's plus iRPE on the keys (rpe_config: rpe_on='k',
# mode 'ctx', shared_head=True, ratio 1.9 -> irpe.py iRPE.lookup_table_weight (1, head_dim,
# 7 * 7 buckets + 1 for the class token))
LOMAR_BLOCK = timm_block() + [('attn.rpe_k.lookup_table_weight', 'attn.rpe_k.lookup_table_weight',
                               (1, D // HEADS, 50))]
# CAE modeling_cae_helper.py Attention / Block (as modeling_finetune.py's): a bias-free qkv Linear
# with q_bias / v_bias, layer scales gamma_1 (attention) / gamma_2 (MLP)
CAE_BLOCK = [*kept('norm1', (D, )), ('attn.q_bias', 'attn.q_bias', (D, )),
             ('attn.v_bias', 'attn.v_bias', (D, )),
             ('attn.qkv.weight', 'attn.qkv.weight', (3 * D, D)),
             *kept('attn.proj', (D, D)), *kept('norm2', (D, )), *kept('mlp.fc1', (MLP, D)),
             *kept('mlp.fc2', (D, MLP)), ('gamma_1', 'ls1.gamma', (D, )),
             ('gamma_2', 'ls2.gamma', (D, ))]
# modeling_finetune.py:76-99 with use_rel_pos_bias (run_class_finetuning.py's default): a table per
# block, and its index buffer (which ours computes)
CAE_FINETUNE_BLOCK = CAE_BLOCK + [
    ('attn.relative_position_bias_table', 'attn.relative_position_bias_table',
     ((2 * GRID - 1)**2 + 3, HEADS)), ('attn.relative_position_index', None, (N + 1, N + 1))]
# modeling_cae_helper.py RegressorBlock (the CAE pretraining's latent regressor)
CAE_REGRESSOR_BLOCK = [
    (k, None, s) for k, _, s in [
        *kept('norm1_q', (D, )), *kept('norm1_k', (D, )), *kept('norm1_v', (D, )),
        *kept('norm2_cross', (D, )), ('cross_attn.q.weight', 0, (D, D)),
        ('cross_attn.k.weight', 0, (D, D)), ('cross_attn.v.weight', 0, (D, D)),
        ('cross_attn.q_bias', 0, (D, )), ('cross_attn.v_bias', 0, (D, )),
        *kept('cross_attn.proj', (D, D)), *kept('mlp_cross.fc1', (MLP, D)),
        *kept('mlp_cross.fc2', (D, MLP)), ('gamma_1_cross', 0, (D, )),
        ('gamma_2_cross', 0, (D, ))]]


def blocks(template, depth=DEPTH, name='blocks', keep=True):
    return [(f'{name}.{i}.{k}', f'layers.{i}.{o}' if keep and o else None, s)
            for i in range(depth) for k, o, s in template]


def under(prefix, entries, keep=True):
    return [(prefix + k, o if keep else None, s) for k, o, s in entries]


EMBED = [('cls_token', 'cls_token', (1, 1, D)), ('pos_embed', 'pos_embed', (1, 1 + N, D)),
         *kept('patch_embed.proj', (D, 3, P, P))]
CAE_ENCODER = [*EMBED, *blocks(CAE_BLOCK), *kept('norm', (D, ))]
OFFICIAL = {  # name: (template, detected source, our model holding exactly the kept keys)
    # models_mae.py MaskedAutoencoderViT: encoder, then the decoder (dropped, apart from the
    # mask token, which the loader drops for a model without one of that shape)
    'mae_pretrain': ([
        *EMBED, *blocks(timm_block()), *kept('norm', (D, )), *dropped('decoder_embed', (DEC, D)),
        ('mask_token', 'mask_token', (1, 1, DEC)), ('decoder_pos_embed', None, (1, 1 + N, DEC)),
        *blocks(timm_block(DEC, 4 * DEC), 1, 'decoder_blocks', keep=False),
        *dropped('decoder_norm', (DEC, )), *dropped('decoder_pred', (P * P * 3, DEC))],
        'timm', lambda: ours()),
    # models_vit.py VisionTransformer(global_pool=True): timm's ViT, final norm -> fc_norm
    'mae_finetune': ([*EMBED, *blocks(timm_block()), *kept('fc_norm', (D, )),
                      *dropped('head', (10, D))],
                     'timm', lambda: ours(out_type='avg_featmap', final_norm=False)),
    # models_lomar.py MaskedAutoencoderViT: the mask token is an encoder input (kept)
    'lomar_pretrain': ([*EMBED, *blocks(LOMAR_BLOCK), *kept('norm', (D, )),
                        *dropped('encoder_pred', (P * P * 3, D)),
                        ('mask_token', 'mask_token', (1, 1, D))],
                       'timm', lambda: LoMaRViT(**SMALL, window_patches=2, pos_embed='learned')),
    # models_vit_rp.py VisionTransformer(global_pool=True): no absolute position embedding
    'lomar_finetune': ([*EMBED[:1], *EMBED[2:], *blocks(LOMAR_BLOCK), *kept('fc_norm', (D, )),
                        *dropped('head', (10, D))],
                       'timm', lambda: ours(rel_pos=True, pos_embed=None, out_type='avg_featmap',
                                            final_norm=False)),
    # modeling_cae.py VisionTransformerForMaskedImageModeling: encoder (kept), teacher (its
    # momentum copy), pretext_neck (regressor, decoder), mask token: dropped
    'cae_pretrain': ([
        *under('encoder.', CAE_ENCODER), *under('teacher.', CAE_ENCODER, keep=False),
        *under('pretext_neck.', [*blocks(CAE_REGRESSOR_BLOCK, 1, 'regressor_blocks'),
                                 *blocks(CAE_BLOCK, 1, 'decoder_blocks', keep=False),
                                 *kept('norm', (D, )), *kept('norm2', (D, )),
                                 *kept('head', (64, D))], keep=False),
        ('mask_token', None, (1, 1, D))],
        'cae', lambda: ours(qkv_bias='qv', layer_scale_init_value=0.1)),
    # modeling_finetune.py VisionTransformer with run_class_finetuning.py's defaults (fixed sin-cos
    # pos_embed stored as a parameter, rel_pos_bias, use_mean_pooling: fc_norm, no final norm)
    'cae_finetune': ([*EMBED, *blocks(CAE_FINETUNE_BLOCK), *kept('fc_norm', (D, )),
                      *dropped('head', (10, D))],
                     'cae', lambda: ours(qkv_bias='qv', layer_scale_init_value=0.1,
                                         rel_pos_bias=True, out_type='avg_featmap',
                                         final_norm=False)),
}


def random_state(entries, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, _, s in entries}


def assert_exact(state, entries, converted, dropped_keys):
    """Each converted tensor is exactly its source tensor; the rest is dropped."""
    expected = {o: k for k, o, _ in entries if o}
    assert sorted(converted) == sorted(expected)
    wrong = [f'{o} <- {k}' for o, k in expected.items() if not torch.equal(converted[o], state[k])]
    assert not wrong, f'converted from another source tensor: {wrong}'
    assert sorted(dropped_keys) == sorted(k for k, o, _ in entries if not o)


@pytest.mark.parametrize('name', list(OFFICIAL))
def test_official_release_tensors_land_on_their_keys(name):
    entries, source, model = OFFICIAL[name]
    assert len({k for k, _, _ in entries}) == len(entries)
    state = random_state(entries)
    ckpt = {'model': state, 'epoch': 799}  # util/misc.py save_model (MAE, LoMaR, CAE)
    assert detect_source(ckpt) == source
    converted, dropped_keys = convert_to_lomar_vit(ckpt)
    assert_exact(state, entries, converted, dropped_keys)
    # the kept keys are exactly our model's, with its shapes
    vit = model()
    converted = {k: v for k, v in converted.items()
                 if k != 'mask_token' or 'mask_token' in vit.state_dict()}
    vit.load_state_dict(converted, strict=True)


def test_official_cae_without_layer_scale_needs_the_source():
    """CAE with layer_scale_init_value=0 (no gamma_1/2) looks like timm's naming: auto-detection
    says 'timm' (the same keys convert), '--source cae' is accepted, and 'mae' (never q/v
    biases) refused."""
    entries = [*EMBED, *blocks(CAE_BLOCK[:-2]), *kept('fc_norm', (D, ))]
    state = random_state(entries)
    assert detect_source(state) == 'timm'
    for source in ('auto', 'cae'):
        assert_exact(state, entries, *convert_to_lomar_vit(state, source))
    with pytest.raises(ValueError, match="source 'mae' does not fit.*q_bias"):
        convert_to_lomar_vit(state, 'mae')


# ---------------------------------------------------------------- timm and mmpretrain modules
def randomize(module, seed=0):
    """Distinct random values in every tensor (norms, biases, layer scales included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in module.state_dict().values():
            t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    module.eval()  # (mmpretrain's train() returns None)
    return module


def timm_template(layer_scale, fc_norm):
    blk = timm_block()
    if layer_scale:  # timm LayerScale after attention (ls1) and MLP (ls2)
        blk = blk[:6] + [('ls1.gamma', 'ls1.gamma', (D, ))] + blk[6:] + [
            ('ls2.gamma', 'ls2.gamma', (D, ))]
    return [*EMBED, *blocks(blk), *kept('fc_norm' if fc_norm else 'norm', (D, )),
            *dropped('head', (10, D))]


@pytest.mark.parametrize('avg_ls', [False, True])
@torch.no_grad()
def test_timm_vit_tensors_and_features(avg_ls):
    """timm ``VisionTransformer`` (token pooling; or LayerScale and 'avg' pooling with fc_norm)."""
    import timm
    opts = dict(init_values=0.1, global_pool='avg') if avg_ls else {}
    ref = randomize(timm.models.vision_transformer.VisionTransformer(
        img_size=GRID * P, patch_size=P, embed_dim=D, depth=DEPTH, num_heads=HEADS,
        mlp_ratio=MLP / D, num_classes=10, **opts))
    state = ref.state_dict()
    entries = timm_template(avg_ls, avg_ls)
    assert sorted(state) == sorted(k for k, _, _ in entries)  # the template is timm's
    assert detect_source(state) == 'timm'
    converted, dropped_keys = convert_to_lomar_vit(state)
    assert_exact(state, entries, converted, dropped_keys)
    model = ours(**(dict(layer_scale_init_value=0.1, out_type='avg_featmap', final_norm=False)
                    if avg_ls else {}))
    model.load_state_dict(converted, strict=True)
    x = torch.randn(2, 3, GRID * P, GRID * P)
    theirs = ref.forward_features(x)
    if avg_ls:
        theirs = ref.forward_head(theirs, pre_logits=True)
    torch.testing.assert_close(model(x)[0], theirs, **TOL)


def mmpretrain_block(layer_scale=None, qv=False):
    """mmpretrain TransformerEncoderLayer (vision_transformer.py) / BEiT's (CAEPretrainViT)."""
    attn = ([('attn.q_bias', 'attn.q_bias', (D, )), ('attn.v_bias', 'attn.v_bias', (D, )),
             ('attn.qkv.weight', 'attn.qkv.weight', (3 * D, D))] if qv else
            kept('attn.qkv', (3 * D, D)))
    out = [*kept('ln1', (D, ), 'norm1'), *attn, *kept('attn.proj', (D, D)),
           *kept('ln2', (D, ), 'norm2'), *kept('ffn.layers.0.0', (MLP, D), 'mlp.fc1'),
           *kept('ffn.layers.1', (D, MLP), 'mlp.fc2')]
    if layer_scale == 'vit':  # mmpretrain LayerScale modules
        out += [('attn.gamma1.weight', 'ls1.gamma', (D, )),
                ('ffn.gamma2.weight', 'ls2.gamma', (D, ))]
    elif layer_scale == 'beit':
        out += [('gamma_1', 'ls1.gamma', (D, )), ('gamma_2', 'ls2.gamma', (D, ))]
    return out


MM_EMBED = [*EMBED[:2], *kept('patch_embed.projection', (D, 3, P, P), 'patch_embed.proj')]
MMPRETRAIN = {  # type: (options, template, our options)
    # fine-tune recipe: LayerScale, mean of the patch tokens then ln2 (-> fc_norm)
    'VisionTransformer': (
        dict(layer_scale_init_value=0.1, out_type='avg_featmap', final_norm=False),
        [*MM_EMBED, *blocks(mmpretrain_block('vit'), name='layers'),
         *kept('ln2', (D, ), 'fc_norm')],
        dict(layer_scale_init_value=0.1, out_type='avg_featmap', final_norm=False)),
    'MAEViT': (dict(out_type='raw'),
               [*MM_EMBED, *blocks(mmpretrain_block(), name='layers'), *kept('ln1', (D, ), 'norm')],
               dict()),
    'CAEPretrainViT': (
        dict(layer_scale_init_value=0.1, bias='qv_bias'),
        [*MM_EMBED, *blocks(mmpretrain_block('beit', qv=True), name='layers'),
         *kept('ln1', (D, ), 'norm')],
        dict(qkv_bias='qv', layer_scale_init_value=0.1)),
}


@pytest.mark.parametrize('mm_type', list(MMPRETRAIN))
@torch.no_grad()
def test_mmpretrain_tensors_and_features(mm_type):
    """A pretraining algorithm checkpoint (backbone.* plus neck keys): every tensor exact, same
    features at the training size and resampled (32 -> 48: both resample the 4x4 table)."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    opts, template, our_opts = MMPRETRAIN[mm_type]
    ref = randomize(MODELS.build(dict(
        type=mm_type, arch=dict(embed_dims=D, num_layers=DEPTH, num_heads=HEADS,
                                feedforward_channels=MLP),
        img_size=GRID * P, patch_size=P, **opts)))
    state = ref.state_dict()
    assert sorted(state) == sorted(k for k, _, _ in template)  # the template is mmpretrain's
    ckpt = {'state_dict': {**{f'backbone.{k}': v for k, v in state.items()},
                           'neck.decoder_pred.weight': torch.zeros(3)}}
    assert detect_source(ckpt) == 'mmpretrain'
    converted, dropped_keys = convert_to_lomar_vit(ckpt)
    entries = [*under('backbone.', template), ('neck.decoder_pred.weight', None, (3, ))]
    assert_exact(ckpt['state_dict'], entries, converted, dropped_keys)
    model = ours(**our_opts)
    model.load_state_dict(converted, strict=True)
    forward = (lambda x: ref(x, mask=None)) if mm_type != 'VisionTransformer' else ref
    sizes = (GRID * P, ) if mm_type == 'CAEPretrainViT' else (GRID * P, GRID * P * 3 // 2)
    for size in sizes:
        x = torch.randn(2, 3, size, size)
        torch.testing.assert_close(model(x)[0], forward(x)[0], **TOL)


# ---------------------------------------------------------------- detection, our own format
def test_not_a_vit_checkpoint_is_named():
    with pytest.raises(ValueError, match='is this a ViT checkpoint'):
        detect_source({'conv1.weight': torch.zeros(1)})


def test_our_naming_is_recognised_in_both_formats():
    """Ours: ``layers.N.`` with timm's names inside (format 3), whole-model or backbone-only;
    whole-model checkpoints written before format 3 (``backbone.blocks.N.``) are ours too."""
    from conftest import format2_names
    vit = randomize(ours(qkv_bias='qv', layer_scale_init_value=0.1))
    sd = vit.state_dict()
    assert 'layers.1.mlp.fc1.weight' in sd and not any(k.startswith('blocks.') for k in sd)
    whole = {f'backbone.{k}': v for k, v in sd.items()}
    for ckpt in (sd, {'state_dict': whole}, {'state_dict': format2_names(whole)}):
        assert detect_source(ckpt) == 'lomar_transfer'
        converted, dropped_keys = convert_to_lomar_vit(ckpt)
        assert dropped_keys == [] and sorted(converted) == sorted(sd)
        assert all(torch.equal(converted[k], v) for k, v in sd.items())
    # mmpretrain's own 'layers.N.ln1' stays mmpretrain's
    assert detect_source({'backbone.layers.0.ln1.weight': torch.zeros(1)}) == 'mmpretrain'


@pytest.mark.parametrize('source, reason', [
    ('cae', "fused q/k/v bias .*'blocks.0.attn.qkv.bias'"),
    ('lomar', 'lacks relative position tables'),
    ('mmpretrain', "timm's naming"),
    ('lomar_transfer', None), ('mae', None), ('timm', None)])
def test_forced_source_is_checked_against_the_keys(source, reason):
    state = random_state([*EMBED, *blocks(timm_block()), *kept('norm', (D, ))])
    if reason:
        with pytest.raises(ValueError, match=f"source '{source}' does not fit this "
                           f'checkpoint: .*{reason}'):
            convert_to_lomar_vit(state, source)
    else:
        convert_to_lomar_vit(state, source)


def test_forced_source_of_another_naming_is_refused():
    """Outside timm's naming (shared by timm, MAE, LoMaR, CAE), only the detected source fits."""
    with pytest.raises(ValueError, match="'lomar_transfer' naming"):
        convert_to_lomar_vit(ours().state_dict(), 'timm')


# ---------------------------------------------------------------- fused qkv bias <-> q/v biases
@pytest.mark.parametrize('k_part', ['zero', 'random'])
@torch.no_grad()
def test_timm_qkv_bias_loads_into_a_qv_bias_vit(k_part, tmp_path):
    """timm's fused qkv.bias -> q_bias / v_bias. The k part adds q_i . b_k to every logit of
    query i alike, which the softmax cancels: dropped, the outputs stay timm's, zero or not."""
    import timm
    ref = randomize(timm.models.vision_transformer.VisionTransformer(
        img_size=GRID * P, patch_size=P, embed_dim=D, depth=DEPTH, num_heads=HEADS,
        mlp_ratio=MLP / D, num_classes=0))
    for blk in ref.blocks:
        if k_part == 'zero':
            blk.attn.qkv.bias[D:2 * D] = 0
        else:  # large enough to change every logit a lot
            blk.attn.qkv.bias[D:2 * D] = 3 * torch.randn(D)
    torch.save(ref.state_dict(), tmp_path / 'timm.pth')
    model = ours(qkv_bias='qv')
    records = []
    logger = logging.getLogger(f'test_qkv_bias_{k_part}')
    logger.addHandler(logging.Handler())
    logger.handlers[-1].emit = records.append
    logger.setLevel(logging.INFO)
    result = load_pretrained_backbone(model, str(tmp_path / 'timm.pth'), logger=logger)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert f"converted: {DEPTH} fused 'qkv.bias' split into q_bias / v_bias" in \
        records[0].getMessage()
    for blk, theirs in zip(model.layers, ref.blocks):
        q, _, v = theirs.attn.qkv.bias.chunk(3)
        assert torch.equal(blk.attn.q_bias, q) and torch.equal(blk.attn.v_bias, v)
    x = torch.randn(2, 3, GRID * P, GRID * P)
    torch.testing.assert_close(model(x)[0], ref.forward_features(x), **TOL)


@torch.no_grad()
def test_qv_biases_load_into_a_fused_bias_vit(tmp_path):
    """q_bias / v_bias (CAE) into a ViT with one qkv.bias: folded with a zero k part, exact."""
    src = randomize(ours(qkv_bias='qv'))
    torch.save({'state_dict': src.state_dict()}, tmp_path / 'qv.pth')
    model = ours()
    result = load_pretrained_backbone(model, str(tmp_path / 'qv.pth'))
    assert result.missing_keys == [] and result.unexpected_keys == []
    bias = model.layers[1].attn.qkv.bias
    assert torch.equal(bias, torch.cat([src.layers[1].attn.q_bias, torch.zeros(D),
                                        src.layers[1].attn.v_bias]))
    x = torch.randn(2, 3, GRID * P, GRID * P)
    torch.testing.assert_close(model(x)[0], src(x)[0], **TOL)


def test_forced_source_the_checkpoint_contradicts_is_refused_by_the_loader(tmp_path):
    import timm
    torch.save(timm.models.vision_transformer.VisionTransformer(
        img_size=GRID * P, patch_size=P, embed_dim=D, depth=DEPTH, num_heads=HEADS,
        num_classes=0).state_dict(), tmp_path / 'timm.pth')
    with pytest.raises(CheckpointError, match="source 'cae' does not fit"):
        load_pretrained_backbone(ours(qkv_bias='qv', layer_scale_init_value=0.1),
                                 str(tmp_path / 'timm.pth'), source='cae')
