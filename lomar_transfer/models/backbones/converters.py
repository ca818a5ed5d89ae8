"""Checkpoint conversion to our :class:`VisionTransformer`, as plain functions.

Sources: timm ``vit_*`` and the official MAE / LoMaR releases (timm naming), the official CAE
release (``encoder.`` prefix, ``gamma_1/2`` layer scales), and mmpretrain backbones or
self-supervised algorithms (``VisionTransformer``, ``MAEViT``, ``CAEPretrainViT``; ``layers.N.ln1``,
``ffn.layers.0.0``, ``backbone.`` prefix). Every function returns ``(state_dict, dropped)`` where
``dropped`` lists the source keys that are not part of the backbone (decoders, heads, teachers...).

Our block list is ``layers`` (mmpretrain's name, which OpenMMLab's layer-decay constructors
parse) holding timm-named blocks: ``layers.N.norm1``, ``layers.N.attn.qkv``, ``layers.N.mlp.fc1``.
Checkpoints of ours written before format 3 named it ``blocks`` (timm's); they convert too.
"""
import re
from collections import OrderedDict
from functools import partial

import torch

from ...fileio import unwrap_checkpoint
from ...sources import SOURCES, TIMM_RULES
from .pos_embed import resample_abs_pos_embed, sincos_pos_embed_2d

# keys of our ViT: what a converted state dict may contain
_BACKBONE_KEY = re.compile(r'^(cls_token|mask_token|pos_embed|patch_embed\.proj\.(weight|bias)'
                           r'|(fc_)?norm\.(weight|bias)'
                           r'|layers\.\d+\.(norm[12]|attn\.(qkv|proj)|mlp\.fc[12])\.(weight|bias)'
                           r'|layers\.\d+\.attn\.[qv]_bias|layers\.\d+\.ls[12]\.gamma'
                           r'|layers\.\d+\.attn\.rpe_k\.lookup_table_weight'
                           r'|layers\.\d+\.attn\.relative_position_bias_table'
                           r'|rel_pos_bias\.relative_position_bias_table'
                           r'|layers\.\d+\.attn\.rel_pos_[hw])$')

# timm's block list (timm, official MAE / LoMaR / CAE, ours before format 3) -> ours
_LEGACY_BLOCK = re.compile(r'^blocks\.(\d+)\.')
_ANY_BLOCK = re.compile(r'(^|\.)blocks\.\d+\.')


def rename_legacy_block(key):
    """``blocks.N.rest`` (timm's name, ours before format 3) -> ``layers.N.rest``."""
    return _LEGACY_BLOCK.sub(r'layers.\1.', key)


def legacy_block_keys(keys, prefix=''):
    """The keys ``{prefix}blocks.N.*`` among ``keys``: a block list in timm's naming."""
    return [k for k in keys if k.startswith(prefix) and _LEGACY_BLOCK.match(k[len(prefix):])]


# mmpretrain ViT family -> ours
_MMPRETRAIN_RULES = [
    (r'^patch_embed\.projection\.', 'patch_embed.proj.'),
    (r'^layers\.(\d+)\.ln1\.', r'layers.\1.norm1.'),
    (r'^layers\.(\d+)\.ln2\.', r'layers.\1.norm2.'),
    (r'^layers\.(\d+)\.ffn\.layers\.0\.0\.', r'layers.\1.mlp.fc1.'),
    (r'^layers\.(\d+)\.ffn\.layers\.1\.', r'layers.\1.mlp.fc2.'),
    (r'^layers\.(\d+)\.gamma_1$', r'layers.\1.ls1.gamma'),  # CAE/BEiT layer scale
    (r'^layers\.(\d+)\.gamma_2$', r'layers.\1.ls2.gamma'),
    (r'^layers\.(\d+)\.attn\.gamma1\.weight$', r'layers.\1.ls1.gamma'),  # ViT LayerScale
    (r'^layers\.(\d+)\.ffn\.gamma2\.weight$', r'layers.\1.ls2.gamma'),
    (r'^layers\.(\d+)\.attn\.', r'layers.\1.attn.'),
    (r'^ln1\.', 'norm.'),
    (r'^ln2\.', 'fc_norm.'),  # pooled-feature norm of out_type='avg_featmap'
]
def _convert(state_dict, rules=(), prefix=None):
    """Apply the first matching rename rule to each key; keep what our ViT has, drop the rest."""
    out, dropped = OrderedDict(), []
    for key, value in state_dict.items():
        new = key
        if prefix:
            if not key.startswith(prefix):
                dropped.append(key)
                continue
            new = key[len(prefix):]
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, new)
            if n:
                break
        if _BACKBONE_KEY.match(new):
            out[new] = value
        else:
            dropped.append(key)
    return out, dropped


def _unwrap_for(ckpt, source):
    """The state dict of a file of ``source`` (its first ``state_keys`` entry holding one) and
    the name of the entry taken, or None."""
    if isinstance(ckpt, dict):
        for key in source.state_keys:
            if isinstance(ckpt.get(key), dict):
                return ckpt[key], key
    return ckpt, None


def convert_source(state_dict, source):
    """A release of a declared :class:`~lomar_transfer.sources.Source` to our keys: its state
    dict found, the encoder's prefix removed, the source's renames applied."""
    source = SOURCES[source] if isinstance(source, str) else source
    sd, taken = _unwrap_for(state_dict, source)
    prefix = next((p for p in source.prefixes if any(k.startswith(p) for k in sd)), None)
    out, dropped = _convert(sd, source.rules, prefix)
    others = [k for k in state_dict if k != taken and isinstance(state_dict[k], dict)
              and any(_ANY_BLOCK.search(str(n)) for n in state_dict[k])] if taken else []
    if others:  # e.g. DINO's student beside its teacher
        dropped.insert(0, f"{'/'.join(others)} (the file's {taken!r} weights are taken, as "
                       f'{source.name} evaluates them)')
    return out, dropped


def convert_mmpretrain(state_dict):
    """mmpretrain ``VisionTransformer`` / ``MAEViT`` / ``CAEPretrainViT`` backbones, or a whole
    algorithm / classifier checkpoint (its ``backbone.`` part is taken)."""
    sd = unwrap_checkpoint(state_dict)
    return _convert(sd, _MMPRETRAIN_RULES, prefix='backbone.' if any(
        k.startswith('backbone.') for k in sd) else None)


def _ours_prefix(sd):
    """Where our ViT sits in a state dict of ours: under ``backbone.`` in a whole-model
    checkpoint (pretraining, transfer), at the top in a backbone's own or a converted one."""
    return 'backbone.' if any(k.startswith('backbone.') for k in sd) else ''


def convert_lomar_transfer(state_dict):
    """Checkpoints of this suite: whole models (our ViT under ``backbone.``: pretraining
    algorithms, transfer models) or a backbone's own state dict. Those written before format 3
    (``blocks.N.*``) are migrated to ``layers.N.*``."""
    sd = unwrap_checkpoint(state_dict)
    return _convert(sd, TIMM_RULES, prefix=_ours_prefix(sd) or None)


# A converted file written by tools/model_converters/to_lomar_vit.py says so in its meta, so
# that the format versions of the weights it came from travel with it.
WRITER = 'lomar_transfer'


def _carry_versions(src, out, prefix):
    """Keep the modules' format versions (torch's state-dict ``_metadata``, prefix removed,
    ``blocks.N`` renamed ``layers.N`` as the keys) of a checkpoint written by lomar_transfer, so
    that loading upgrades or refuses weights of an older format (``VisionTransformer._version``).
    Official checkpoints carry versions of other modules (e.g. iRPE's 1), which must not be read
    as ours."""
    meta = getattr(src, '_metadata', None)
    if meta is None:
        return out
    out._metadata = OrderedDict(
        (re.sub(r'^blocks(?=\.\d+(\.|$)|$)', 'layers', k[len(prefix):])
         if k.startswith(prefix) else '', v)
        for k, v in meta.items() if k == prefix.rstrip('.') or k.startswith(prefix))
    return out


def _ours_written_by(state_dict, source):
    """The prefix of our ViT in a checkpoint of ours (this suite's, or a file converted by it
    whose meta says so), else None."""
    if source == 'lomar_transfer':
        return _ours_prefix(unwrap_checkpoint(state_dict))
    meta = state_dict.get('meta') if isinstance(state_dict, dict) else None
    return '' if isinstance(meta, dict) and meta.get('writer') == WRITER else None


def describe_migration(legacy):
    """The report line for :func:`legacy_format`'s ``(version, number of tensors)``."""
    version, count = legacy
    return (f"lomar_transfer checkpoint format {'< 3' if version is None else version}: "
            f"{count} block tensors renamed 'blocks.N.*' -> 'layers.N.*' (format 3 names)")


def legacy_format(state_dict, source='auto'):
    """For a checkpoint of ours written before format 3 (block list ``blocks``, migrated to
    ``layers`` by the conversion): ``(its format version, or None where it records none,
    number of block tensors)``; None for any other checkpoint."""
    if source == 'auto':
        source = detect_source(state_dict)
    prefix = _ours_written_by(state_dict, source)
    if prefix is None:
        return None
    sd = unwrap_checkpoint(state_dict)
    old = legacy_block_keys(sd, prefix)
    if not old:
        return None
    meta = getattr(sd, '_metadata', None) or {}
    return meta.get(prefix.rstrip('.'), {}).get('version'), len(old)


CONVERTERS = {**{name: partial(convert_source, source=name) for name in SOURCES},
              'mmpretrain': convert_mmpretrain, 'lomar_transfer': convert_lomar_transfer}


# every entry of a file's dict that some source keeps its weights under
_STATE_KEYS = tuple(dict.fromkeys(k for source in SOURCES.values() for k in source.state_keys))


def _all_keys(ckpt):
    """The file's top-level keys and those of every entry a source keeps its weights under."""
    if not isinstance(ckpt, dict):
        return []
    return list(ckpt) + [k for key in _STATE_KEYS if isinstance(ckpt.get(key), dict)
                         for k in ckpt[key]]


def _marked(source, keys):
    hit = lambda patterns: any(re.search(p, k) for p in patterns for k in keys)  # noqa: E731
    return source.marks is not None and hit(source.marks) and not hit(source.unless)


def closest_source(ckpt):
    """The declared source whose conversion keeps most of the file's tensors, and how many."""
    counts = {name: len(convert_source(ckpt, s)[0]) for name, s in SOURCES.items()}
    best = max(counts, key=counts.get)
    return best, counts[best]


def detect_source(state_dict):
    """The format of a checkpoint: 'lomar_transfer' (ours), 'mmpretrain', or the declared source
    (:mod:`lomar_transfer.sources`) whose marks it has, the specific before the generic (timm's
    naming, which the official MAE and LoMaR files share).

    Ours: ``[backbone.]layers.N.norm1`` (mmpretrain's list name, timm's names inside), or
    ``backbone.blocks.N.`` (whole-model checkpoints written before format 3). A bare ``blocks.N.``
    dict is timm's naming, which our backbone files written before format 3 share: they convert
    the same way (their ``meta`` names our writer when the converter wrote them)."""
    keys = list(unwrap_checkpoint(state_dict))
    if any(re.match(r'^(backbone\.)?layers\.\d+\.(norm[12]|mlp\.fc[12]|ls[12])\.', k)
           for k in keys) or any(re.match(r'^backbone\.blocks\.\d+\.', k) for k in keys):
        return 'lomar_transfer'
    if any(re.match(r'^(backbone\.)?layers\.\d+\.ln1\.', k) for k in keys):
        return 'mmpretrain'
    every = _all_keys(state_dict) + keys
    for generic in (False, True):
        for name, source in SOURCES.items():
            if source.generic == generic and _marked(source, every):
                return name
    best, kept = closest_source(state_dict)
    raise ValueError(
        'cannot tell the checkpoint format: no ViT block keys of a known layout (first keys: '
        f'{keys[:5]}). Known: {", ".join(CONVERTERS)}; the closest by key overlap is '
        + (f'{best!r} ({kept} tensors would load): pass source={best!r} if it is that release'
           if kept else 'none (no key maps to a ViT tensor): is this a ViT checkpoint?'))


def check_source(state_dict, source):
    """Refuse (ValueError) a forced ``source`` that the checkpoint contradicts: another naming
    than auto-detection finds, or, among the formats in timm's naming, keys that the forced
    format's official model never has (or lacks keys it always has). A checkpoint that
    detection cannot place is left to the forced converter."""
    try:
        detected = detect_source(state_dict)
    except ValueError:
        return
    what = f'source {source!r} does not fit this checkpoint'
    if detected == source:
        return
    keys = list(_unwrap_for(state_dict, SOURCES[source])[0] if source in SOURCES
                else unwrap_checkpoint(state_dict))
    if not (SOURCES.get(detected) and SOURCES[detected].generic):
        # only a generic naming (timm's) is shared by several formats
        raise ValueError(f"{what}: its keys are in {detected!r} naming (e.g. {keys[0]!r}); "
                         f"use source {detected!r} or auto-detection")
    if source == 'lomar_transfer':
        return  # ours before format 3 named the blocks as timm does
    if source not in SOURCES:
        raise ValueError(f"{what}: its keys are in timm's naming (e.g. 'blocks.0...'), which "
                         f'{source!r} checkpoints do not use; auto-detection says {detected!r}')
    for pattern, name in SOURCES[source].never:
        hit = next((k for k in keys if re.search(pattern, k)), None)
        if hit:
            raise ValueError(f'{what}: it holds {name}, e.g. {hit!r}, which {source!r} '
                             f'checkpoints never have; auto-detection says {detected!r}')
    for pattern, name in SOURCES[source].needs:
        if not any(re.search(pattern, k) for k in keys):
            raise ValueError(f'{what}: it lacks {name}, which {source!r} checkpoints always '
                             f'have; auto-detection says {detected!r}')


def convert_to_lomar_vit(state_dict, source='auto'):
    """Convert any supported checkpoint (or its state dict) to our ViT's keys. A forced
    ``source`` that the checkpoint contradicts is refused (:func:`check_source`)."""
    if source == 'auto':
        source = detect_source(state_dict)
    elif source not in CONVERTERS:
        raise KeyError(f'unknown checkpoint source {source!r}; choose one of {list(CONVERTERS)}')
    else:
        check_source(state_dict, source)
    out, dropped = CONVERTERS[source](state_dict)
    prefix = _ours_written_by(state_dict, source)
    if prefix is not None:
        _carry_versions(unwrap_checkpoint(state_dict), out, prefix)
    return out, dropped


def fit_attention_biases(state, own):
    """Give a converted state dict ``state`` the attention biases that the model with state dict
    ``own`` has, in place; returns report lines.

    A fused ``qkv.bias`` (timm, MAE, LoMaR) into a model with q/v biases (CAE-style
    ``qkv_bias='qv'``) becomes ``q_bias`` / ``v_bias``; its k part is dropped, which changes no
    output: a key bias adds ``q_i . b_k`` to every logit of query ``i`` alike, and the softmax over
    the keys cancels a per-query constant (the relative position terms are added to the logits
    and do not involve the keys). ``q_bias`` / ``v_bias`` into a model with a fused bias become
    ``qkv.bias`` with a zero k part, which is what the q/v-bias model computes."""
    split, folded, k_max = 0, 0, 0.
    for key in [k for k in state if k.endswith('attn.qkv.bias')]:
        p = key[:-len('qkv.bias')]
        if key not in own and p + 'q_bias' in own and p + 'q_bias' not in state and \
                state[key].shape == (3 * own[p + 'q_bias'].shape[0], ):
            q, k, v = state.pop(key).chunk(3)
            state[p + 'q_bias'], state[p + 'v_bias'] = q, v
            split, k_max = split + 1, max(k_max, k.abs().max().item())
    for key in [k for k in state if k.endswith('attn.q_bias')]:
        p = key[:-len('q_bias')]
        if key not in own and p + 'qkv.bias' in own and p + 'qkv.bias' not in state and \
                p + 'v_bias' in state:
            q, v = state.pop(key), state.pop(p + 'v_bias')
            state[p + 'qkv.bias'] = torch.cat([q, torch.zeros_like(q), v])
            folded += 1
    notes = []
    if split:
        notes.append(f"{split} fused 'qkv.bias' split into q_bias / v_bias; their k parts (max "
                     f'|b_k| {k_max:.3g}) dropped, which the softmax makes exact')
    if folded:
        notes.append(f"{folded} q_bias / v_bias pairs folded into 'qkv.bias' with a zero k part")
    return notes


def timm_model_class(timm_state):
    """The timm class that holds :func:`convert_to_timm`'s output: ``'Beit'``
    (``timm.models.beit.Beit``) when it has BEiT's relative position bias tables, else
    ``'VisionTransformer'`` (``timm.models.vision_transformer.VisionTransformer``)."""
    return ('Beit' if any(k.endswith('attn.relative_position_bias_table') for k in timm_state)
            else 'VisionTransformer')


def timm_model_kwargs(timm_state, img_size=224):
    """The options of timm's ``VisionTransformer`` that hold :func:`convert_to_timm`'s output
    exactly, apart from ``num_heads`` (not in the weights): a backbone without class token needs
    ``class_token=False`` and a pooling other than 'token' (timm asserts it): 'avg' over the
    normed tokens (``fc_norm=False``) or, for a pooled-feature norm ``fc_norm``, 'avg' then
    ``fc_norm``. For an output in timm's ``Beit`` layout (:func:`timm_model_class`): the
    options of ``Beit``, ``num_heads`` included (the tables have one column per head)."""
    sd = timm_state
    weight = sd['patch_embed.proj.weight']
    patch = tuple(weight.shape[-2:])
    kw = dict(img_size=img_size, patch_size=patch[0] if patch[0] == patch[1] else patch,
              embed_dim=weight.shape[0],
              depth=len({k.split('.')[1] for k in sd if k.startswith('blocks.')}),
              mlp_ratio=sd['blocks.0.mlp.fc1.weight'].shape[0] / weight.shape[0])
    if timm_model_class(sd) == 'Beit':
        kw.update(num_heads=sd['blocks.0.attn.relative_position_bias_table'].shape[1],
                  qkv_bias='blocks.0.attn.q_bias' in sd, use_abs_pos_emb='pos_embed' in sd,
                  use_rel_pos_bias=True)
        # any value with LayerScale (the loaded gammas replace it); 0 without it, explicitly: the
        # beit_* entries of timm's registry default to LayerScale and create_model drops None
        kw['init_values'] = 0.1 if 'blocks.0.gamma_1' in sd else 0.
        # fc_norm: timm pools the patch tokens, then norms (its final norm is an Identity)
        fc_norm = 'fc_norm.weight' in sd
        kw.update(global_pool='avg' if fc_norm else 'token', use_fc_norm=fc_norm)
        return kw
    if 'blocks.0.attn.qkv.bias' not in sd:
        kw['qkv_bias'] = False
    if 'blocks.0.ls1.gamma' in sd:
        kw['init_values'] = 0.1  # any value: the loaded gammas replace it
    if 'cls_token' not in sd:
        kw['class_token'] = False
    if 'pos_embed' not in sd:
        kw['pos_embed'] = 'none'
    if 'fc_norm.weight' in sd:
        kw['global_pool'] = 'avg'  # timm then norms after pooling (fc_norm), not per token
    elif 'norm.weight' not in sd:
        kw['final_norm'] = False
        if 'cls_token' not in sd:
            kw['global_pool'] = 'avg'
    elif 'cls_token' not in sd:
        kw.update(global_pool='avg', fc_norm=False)
    return kw


def _to_timm_key(key):
    return re.sub(r'^layers\.(\d+)\.', r'blocks.\1.', key)


def _beit_grid(table_rows):
    """The square grid (s, s) whose BEiT table has ``table_rows`` rows, (2s-1)^2 + 3, or None."""
    side = round(((table_rows - 3)**0.5 + 1) / 2)
    return (side, side) if (2 * side - 1)**2 + 3 == table_rows else None


def _to_beit(sd, out, img_size):
    """Rewrite ``out`` (timm ``VisionTransformer`` keys) in place into timm ``Beit``'s layout for
    our backbone ``sd`` with BEiT/CAE relative position bias tables; ValueError where no ``Beit``
    holds it exactly."""
    why = 'timm holds relative position bias tables only in its Beit model, which'
    if 'cls_token' not in out:
        raise ValueError(f'{why} always has a class token (the tables\' last 3 rows are its '
                         'terms) and this backbone has none: no timm model computes its features')
    if 'norm.weight' not in out and 'fc_norm.weight' not in out:
        raise ValueError(f'{why} always ends in a LayerNorm (norm, or fc_norm after pooling) and '
                         'this backbone has none (final_norm=False without fc_norm): no timm '
                         'model computes its features')
    weight = out['patch_embed.proj.weight']
    grid = (img_size // weight.shape[-2], img_size // weight.shape[-1])
    rows = out['blocks.0.attn.relative_position_bias_table'].shape[0]
    if (2 * grid[0] - 1) * (2 * grid[1] - 1) + 3 != rows:
        made = _beit_grid(rows)
        hint = (f'pass --img-size {made[0] * weight.shape[-1]}' if made and
                weight.shape[-1] == weight.shape[-2] else 'pass the img_size it was trained at')
        raise ValueError(
            f'the relative position bias tables ({rows} rows) are made for a '
            f'{"x".join(map(str, made)) if made else "non-square"} patch grid, not the '
            f'{grid[0]}x{grid[1]} grid of img_size {img_size}: {hint} (timm\'s Beit '
            'resize_rel_pos_bias_table can then move them to another size)')
    if 'pos_embed' in out and out['pos_embed'].shape[1] != 1 + grid[0] * grid[1]:
        # a learned table on another grid: resampled as our forward does at this size
        out['pos_embed'] = resample_abs_pos_embed(out['pos_embed'], grid)
    for key in [k for k in out if k.startswith('blocks.')]:
        new = re.sub(r'\.ls([12])\.gamma$', r'.gamma_\1', key)
        if new != key:
            out[new] = out.pop(key)
    for q_key in [k for k in sd if re.match(r'^layers\.\d+\.attn\.q_bias$', k)]:
        t = _to_timm_key(q_key)
        out[t] = sd[q_key]
        out[t[:-len('q_bias')] + 'v_bias'] = sd[q_key[:-len('q_bias')] + 'v_bias']
        del out[t[:-len('q_bias')] + 'qkv.bias']  # the fold into a fused bias made above
    for key in [k for k in out if k.endswith('attn.qkv.bias')]:
        # Beit's qkv has only q and v biases: the k part changes no output (the softmax over the
        # keys cancels a per-query constant q_i . b_k; the table terms do not involve the keys)
        q, _, v = out.pop(key).chunk(3)
        out[key[:-len('qkv.bias')] + 'q_bias'], out[key[:-len('qkv.bias')] + 'v_bias'] = q, v


def convert_to_timm(state_dict, img_size=224, drop_rel_pos=False, sincos_order=None):
    """Our ViT (or any supported checkpoint, converted first) -> timm keys: its
    ``VisionTransformer``'s, or, for a backbone with BEiT/CAE relative position bias tables
    (``rel_pos_bias=True``), its ``Beit``'s (:func:`timm_model_class` says which).

    Exact for MAE / CAE / timm-style backbones: a fixed sin-cos position embedding becomes timm's
    ``pos_embed`` for an ``img_size`` input (class-token slot zero, as in official MAE), q/v
    biases fold into ``qkv.bias`` with a zero k bias, LayerScale keeps its name (``ls1.gamma``).
    ``sincos_order`` of the fixed table: None infers it (q/v biases: CAE's order, else MAE's).
    In ``Beit``'s layout the tables keep their names (the same index as timm's), q/v biases stay
    ``q_bias`` / ``v_bias`` (a fused bias gives its q and v parts; the k part changes no output),
    LayerScale becomes ``gamma_1/2``; ``img_size`` must be the size the tables were made for.
    A backbone that no ``Beit`` holds (no class token, no final norm) is refused (ValueError):
    timm's ``VisionTransformer`` would silently ignore the tables.
    LoMaR's relative position tables and ViTDet's decomposed ones have no timm counterpart:
    refused unless ``drop_rel_pos`` (then listed in ``dropped``). Our ``layers.N.*`` become
    timm's ``blocks.N.*`` (the names inside a block are timm's already); a mask token (LoMaR's
    encoder input) has no timm counterpart and is dropped.
    Returns ``(timm_state_dict, dropped)``; build the timm model with :func:`timm_model_kwargs`
    (``class_token=False`` and an 'avg' pooling for a backbone without class token).
    """
    sd, dropped = convert_to_lomar_vit(state_dict)
    rel = [k for k in sd if k.endswith('rpe_k.lookup_table_weight')]
    if rel and not drop_rel_pos:
        raise ValueError(
            f'the checkpoint has relative position tables ({len(rel)}, LoMaR) that timm\'s '
            'VisionTransformer cannot hold; pass drop_rel_pos=True (--drop-rel-pos) to export '
            'without them (the exported model then has no position information)')
    # ViTDet's decomposed tables (rel_pos='decomposed'): the conversion to our keys does not keep
    # them (they stay among the dropped keys), but they are part of the backbone
    decomposed = [k for k in [*sd, *dropped] if re.search(r'(^|\.)attn\.rel_pos_[hw]$', k)]
    if decomposed and not drop_rel_pos:
        raise ValueError(
            f"the checkpoint has ViTDet's decomposed relative position tables ({len(decomposed)},"
            " e.g. 'attn.rel_pos_h') that neither timm's VisionTransformer nor its Beit holds "
            "(timm's SAM ViT has such tables, with window sizes the weights do not record); "
            'pass drop_rel_pos=True (--drop-rel-pos) to export without them')
    for key in [k for k in decomposed if k in sd]:
        dropped.append(key)
        del sd[key]
    out = OrderedDict()
    for key, value in sd.items():
        if key in rel or key == 'mask_token':  # timm's VisionTransformer has no mask token
            dropped.append(key)
            continue
        if re.match(r'^layers\.\d+\.attn\.[qv]_bias$', key):
            continue  # folded into qkv.bias below
        out[_to_timm_key(key)] = value
    for q_key in [k for k in sd if k.endswith('attn.q_bias')]:
        prefix = q_key[:-len('q_bias')]
        q, v = sd[q_key], sd[prefix + 'v_bias']
        out[_to_timm_key(prefix + 'qkv.bias')] = torch.cat([q, torch.zeros_like(q), v])
    if 'pos_embed' not in out and not rel:  # fixed sin-cos (MAE / CAE): materialise it
        weight = out['patch_embed.proj.weight']
        grid = img_size // weight.shape[-1]
        if sincos_order is None:  # our fixed-table models with q/v biases are CAE's
            sincos_order = 'cae' if any(k.endswith('attn.q_bias') for k in sd) else 'mae'
        emb = sincos_pos_embed_2d((grid, grid), weight.shape[0], order=sincos_order).to(
            weight.dtype)
        if 'cls_token' in out:
            emb = torch.cat([emb.new_zeros(1, emb.shape[1]), emb])
        out['pos_embed'] = emb[None]
    if timm_model_class(out) == 'Beit':
        _to_beit(sd, out, img_size)
    return out, dropped
