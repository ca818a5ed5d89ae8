"""Incoming weights into :class:`VisionTransformer`: the one place where a state dict is adapted
to the model that receives it, and the checked load that refuses what torch and mmengine would
only warn about.

:func:`adapt_state_dict` runs from the ViT's own load hook (``_load_from_state_dict``), so every
loader goes through it: ``init_cfg=Pretrained`` / ``pretrained=``, mmengine's ``load_from``,
``--resume``, ``lomar-test`` and the reconstruction tool. Converters (:mod:`.converters`) only map
a release's key names to ours; what depends on the receiving model happens here.
"""
import re
from contextlib import contextmanager

import torch
from mmengine.logging import print_log

from ...fileio import CheckpointError
from .converters import (describe_migration, fit_attention_biases, legacy_block_keys,
                         rename_legacy_block)
from .pos_embed import SINCOS_ORDERS, resample_abs_pos_embed, sincos_pos_embed_2d
from .relative_position import ContextualKeyRPE, resize_beit_table, resize_rel_pos


class IncompatibleWeights(ValueError):
    """Weights that cannot mean in this model what they meant in theirs; the loaders raise it
    as a :class:`CheckpointError` naming the file."""


def check_fixed_table(model, pos, atol=1e-4):
    """A model with a fixed sin-cos table computes it; a stored table must be that table
    (official MAE/CAE/MoCo v3 checkpoints store theirs), else the weights were trained with
    other positions and loading them would silently change what they compute."""
    pos = pos.reshape(-1, pos.shape[-1]).float()
    n = pos.shape[0]
    side = int(round((n - 1)**.5))
    prefix = 1 if side * side == n - 1 else 0
    side = int(round((n - prefix)**.5))
    if side * side != n - prefix:
        raise IncompatibleWeights(f'pos_embed of {n} tokens is not a square grid')
    if prefix and pos[0].abs().max() > atol:
        raise IncompatibleWeights(
            "the checkpoint's pos_embed has a non-zero class-token slot, so it is a learned "
            "table (e.g. a fine-tuned model); build the backbone with pos_embed='learned' to "
            'load it')
    diffs = {order: (pos[prefix:] - sincos_pos_embed_2d((side, side), pos.shape[-1],
                                                         order=order)).abs().max().item()
             for order in SINCOS_ORDERS}
    if diffs[model.sincos_order] <= atol:
        return
    match = [o for o, d in diffs.items() if d <= atol]
    fix = (f"it is the fixed table in {match[0]!r} order: build the backbone with "
           f"sincos_order={match[0]!r}" if match else
           "it is a learned table (e.g. a fine-tuned model): build the backbone with "
           "pos_embed='learned' to load it")
    raise IncompatibleWeights(
        f"the checkpoint's pos_embed differs from this model's fixed sin-cos table "
        f"({model.sincos_order!r} order) by up to {diffs[model.sincos_order]:.3g}; {fix}")


def has_fixed_table(keys):
    """State-dict keys of a ViT without a stored position table whose model had a fixed one:
    every MAE/CAE-style encoder (patch embedding and blocks, no relative position tables)."""
    keys = list(keys)
    return (any(k.endswith('patch_embed.proj.weight') for k in keys)
            and not any(k.endswith('pos_embed') for k in keys)
            and not any(t in k for k in keys
                        for t in ('lookup_table_weight', 'rel_pos', 'relative_position')))


def fixed_table_for(model, grid_hw):
    """The pretraining's fixed table (model's order, ``pretrain_grid_hw``) resampled to
    ``grid_hw``, with zero class-token slots, (1, prefix + h*w, C)."""
    table = sincos_pos_embed_2d(model.pretrain_grid_hw, model.embed_dims, order=model.sincos_order)
    table = torch.cat([table.new_zeros(model.num_prefix_tokens, model.embed_dims), table])[None]
    return resample_abs_pos_embed(table, grid_hw, model.pretrain_grid_hw, model.num_prefix_tokens)


def _migrate_blocks(state, p, version, notes):
    """``blocks.N.*`` of our checkpoints before format 3 -> ``layers.N.*``. Format 1 tables of
    LoMaR's relative position are rescaled here: their module's version is recorded under the
    old name, out of its own hook's reach."""
    old = legacy_block_keys(state, p)
    if not old or any(k.startswith(p + 'layers.') for k in state):
        return
    for key in old:
        new = p + rename_legacy_block(key[len(p):])
        state[new] = state.pop(key)
        if version is not None and new.endswith('.rpe_k.lookup_table_weight'):
            ContextualKeyRPE.upgrade_table(state, new, version)
    notes.append(('migrated', describe_migration((version, len(old)))))


def _refuse_cae_before_format_2(model, state, p, version):
    if (version < 2 and p + 'layers.0.attn.q_bias' in state and model.pos_embed_type == 'sincos'
            and model.sincos_order == 'cae' and p + 'pos_embed' not in state):
        raise IncompatibleWeights(
            'written by lomar_transfer before format 2: its CAE encoder was trained with the '
            "sin-cos table in MAE's channel order, and this model uses CAE's own order "
            '(lxtGH/CAE), so the weights would silently mean something else. Re-run the CAE '
            "pretraining, or build the backbone with sincos_order='mae' to use it as trained.")


def _adapt_pos_embed(model, state, p, notes):
    key = p + 'pos_embed'
    if key in state:
        pos = state[key]
        if isinstance(model.pos_embed, torch.nn.Parameter):
            if pos.shape[1] != model.pos_embed.shape[1]:
                with_cls_slot = int((pos.shape[1] - 1)**.5)**2 == pos.shape[1] - 1
                if model.num_prefix_tokens == 0 and with_cls_slot:
                    pos = pos[:, 1:]  # a class-token slot the model has no token for
                state[key] = resample_abs_pos_embed(pos, model.pos_grid_hw,
                                                    num_prefix_tokens=model.num_prefix_tokens)
                notes.append(('converted', f'pos_embed resampled {tuple(pos.shape[1:2])} -> '
                              f'{tuple(model.pos_embed.shape[1:2])} tokens'))
            return
        del state[key]
        if model.pos_embed_type == 'sincos':
            check_fixed_table(model, pos)  # the model's own table, or a refusal
        else:
            notes.append(('ignored', 'pos_embed (this model has no absolute position embedding)'))
    elif model.pos_embed_type == 'learned' and has_fixed_table(k for k in state
                                                               if k.startswith(p)):
        # a learned table starts from the pretraining's fixed one, which checkpoints of a fixed
        # table do not store (ours compute it): rebuild it at the pretraining grid, then
        # resample it as a stored one (mmseg MAE / ViTDet interpolate the pretrained table)
        state[key] = fixed_table_for(model, model.pos_grid_hw)
        notes.append(('ignored', f'pos_embed (not stored: started from the fixed sin-cos '
                      f'table, {model.sincos_order!r} order, {model.pretrain_grid_hw} grid)'))


def _expand_shared_bias(state, p, own, notes):
    """BEiT's pretraining shares one relative position bias table by all blocks
    (``rel_pos_bias.relative_position_bias_table``); its fine-tuning copies it into every block
    (unilm beit/run_class_finetuning.py, "Expand the shared relative position embedding")."""
    key = p + 'rel_pos_bias.relative_position_bias_table'
    if key not in state:
        return
    table = state.pop(key)
    targets = [k for k in own if k.endswith('attn.relative_position_bias_table')]
    if not targets:
        notes.append(('ignored', 'rel_pos_bias (shared table; this model has no per-block '
                      'tables: build it with rel_pos_bias=True to use it)'))
        return
    for k in targets:
        state.setdefault(k, table.clone())
    notes.append(('converted', f'shared relative position bias copied into the {len(targets)} '
                  'blocks (BEiT fine-tuning)'))


def _resize_decomposed_tables(state, own, notes):
    """ViTDet's per-axis tables of another window or input size resized linearly to the model's
    length, as detectron2's ``get_rel_pos`` resizes them when it meets them."""
    for key in [k for k in state if k.endswith(('.rel_pos_h', '.rel_pos_w'))]:
        table, want = state[key], own.get(key)
        if want is not None and table.dim() == 2 and table.shape[1] == want.shape[1] \
                and table.shape[0] != want.shape[0]:
            state[key] = resize_rel_pos(table, want.shape[0])
            notes.append(('converted', f'{key} resized linearly {table.shape[0]} -> '
                          f'{want.shape[0]}'))


def _resize_bias_tables(state, own, notes):
    """BEiT/CAE relative position bias tables of another grid resized to the model's, as BEiT's
    fine-tuning and segmentation loaders resize them (:func:`resize_beit_table`): square grids
    only, as there."""
    resized = {}
    for key in [k for k in state if k.endswith('attn.relative_position_bias_table')]:
        table, want = state[key], own.get(key)
        if want is None or table.shape == want.shape or table.shape[1] != want.shape[1]:
            continue
        src, dst = ((rows - 3)**.5 for rows in (table.shape[0], want.shape[0]))
        if src != int(src) or dst != int(dst):
            raise IncompatibleWeights(
                f'{key}: a table of {table.shape[0]} rows into one of {want.shape[0]}: BEiT\'s '
                'resizing works between square grids only; use a square input size')
        state[key] = resize_beit_table(table, int(dst))
        resized[(int(src), int(dst))] = resized.get((int(src), int(dst)), 0) + 1
    for (src, dst), count in resized.items():
        notes.append(('converted', f'{count} relative position bias tables resized {src}x{src} '
                      f'-> {dst}x{dst} offsets (BEiT\'s geometric interpolation)'))


def adapt_state_dict(model, state, prefix, version):
    """Adapt ``state`` (keys ``prefix`` + ours) in place to ``model``, the ViT loading it;
    ``version`` is the format the state dict records for it (None: none). Returns report lines
    ``(kind, text)``, kind 'migrated' / 'converted' / 'ignored'; raises
    :class:`IncompatibleWeights` for weights that would silently mean something else."""
    notes, p = [], prefix
    _migrate_blocks(state, p, version, notes)
    _refuse_cae_before_format_2(model, state, p, model._version if version is None else version)
    own = {p + k: v for k, v in model.state_dict().items()}
    _adapt_pos_embed(model, state, p, notes)
    _resize_decomposed_tables(state, own, notes)
    _expand_shared_bias(state, p, own, notes)
    _resize_bias_tables(state, own, notes)
    mask_token = state.get(p + 'mask_token')
    if mask_token is not None and mask_token.shape != own.get(p + 'mask_token',
                                                              mask_token[:0]).shape:
        del state[p + 'mask_token']  # a decoder's (MAE/CAE/BEiT) or a model without masking
        notes.append(('ignored', 'mask_token (not an encoder input of this model)'))
    if getattr(model, 'fc_norm_from_norm', False) and p + 'fc_norm.weight' in own \
            and p + 'fc_norm.weight' not in state and p + 'norm.weight' in state:
        # CAE's fine-tuning starts the pooled-feature norm from the pretrained final norm
        # (run_class_finetuning.py:372-377); MAE and LoMaR start it anew
        for name in ('weight', 'bias'):
            state[f'{p}fc_norm.{name}'] = state.pop(f'{p}norm.{name}')
        notes.append(('ignored', 'norm (loaded as fc_norm)'))
    if p + 'cls_token' in state and p + 'cls_token' not in own:
        del state[p + 'cls_token']
        notes.append(('ignored', 'cls_token (this model has no class token)'))
    notes += [('converted', n) for n in fit_attention_biases(state, own)]
    return notes


@contextmanager
def collecting_notes(model):
    """Within it, :func:`adapt_state_dict`'s lines for ``model`` go to the yielded list (a
    loader's report) instead of the log."""
    notes = []
    model._incoming_notes = notes
    try:
        yield notes
    finally:
        model._incoming_notes = None


def report_notes(model, prefix, notes):
    """Hand the hook's lines to a collecting loader, or log them."""
    sink = getattr(model, '_incoming_notes', None)
    if sink is not None:
        sink.extend(notes)
    elif notes:
        print_log('\n'.join(f'{prefix.rstrip(".") or "backbone"}: {kind}: {text}'
                            for kind, text in notes), logger='current')


def describe_size_mismatch(error):
    """torch's size-mismatch message as 'key: checkpoint (shape) vs model (shape)'."""
    m = re.match(r'size mismatch for (\S+): .*?torch\.Size\((.*?)\) from checkpoint, .*?'
                 r'torch\.Size\((.*?)\)', error)
    return f'{m[1]}: checkpoint {m[2]} vs model {m[3]}' if m else error.split('\n')[0][:200]


def load_and_record(model, load):
    """Run ``load()`` (any loading into ``model``: torch's, mmengine's) and record what did not
    load, after every module's own adaptation: ``(load's result, dict(missing, unexpected,
    errors))``, the dict empty when ``load`` did not reach ``model``. A size mismatch that torch
    raises for is recorded, not raised."""
    lists, report = {}, {}

    def grab(module, state_dict, prefix, meta, strict, missing, unexpected, errors):
        lists.update(missing=missing, unexpected=unexpected, errors=errors)

    def snapshot(module, incompatible):
        # the root's post hook runs last: after every module's own adaptation, and before
        # torch raises / mmengine appends its summary to the error list
        report.update({k: list(v) for k, v in lists.items()})

    handles = [model.register_load_state_dict_pre_hook(grab),
               model.register_load_state_dict_post_hook(snapshot)]
    result = None
    try:
        result = load()
    except RuntimeError:
        if not report.get('errors'):
            raise
    finally:
        for handle in handles:
            handle.remove()
    return result, report


def check_fit(model, load, path, exact=False, min_match=0.5):
    """Run ``load()``, a loading of checkpoint ``path`` into ``model``, and refuse what it only
    warns about (mmengine loads with strict=False, skipping tensors of another shape): fewer than
    ``min_match`` of the model's tensors loaded, i.e. another model's weights, or (``exact``, for
    resuming) any of them not loaded. Returns what ``load`` returns."""
    try:
        result, report = load_and_record(model, load)
    except IncompatibleWeights as e:
        raise CheckpointError(path, str(e)) from e
    if not report:
        return result
    missing = [k for k in report['missing'] if 'num_batches_tracked' not in k]
    total = len([k for k in model.state_dict() if 'num_batches_tracked' not in k])
    loaded = total - len(missing) - len(report['errors'])
    if loaded < (total if exact else min_match * total):
        parts = [f'{loaded} of its {total} tensors load']
        if report['errors']:
            parts.append(f"{len(report['errors'])} have another shape, e.g. "
                         f"{'; '.join(describe_size_mismatch(e) for e in report['errors'][:2])}")
        if missing:
            parts.append(f'{len(missing)} are missing, e.g. {", ".join(missing[:2])}')
        if report['unexpected']:
            parts.append(f'it has instead e.g. {", ".join(report["unexpected"][:3])}')
        raise CheckpointError(path, (
            'does not fit this model exactly, so it cannot be resumed (a run of another config?)'
            if exact else "does not fit this model (another model's weights? A pretrained "
            'backbone goes in model.backbone.init_cfg)') + ': ' + '; '.join(parts))
    return result
