"""Pretrained weights of any supported release into our ``VisionTransformer``: converted,
adapted (position tables, attention biases), reported, or refused with the reason."""
import os.path as osp

import torch
from mmengine.logging import print_log

from ...fileio import CheckpointError, MissingCheckpointError, read_checkpoint
from .converters import (convert_to_lomar_vit, describe_migration, fit_attention_biases,
                         legacy_format)
from .pos_embed import SINCOS_ORDERS, resample_abs_pos_embed, sincos_pos_embed_2d
from .relative_position import resize_rel_pos


def _check_fixed_table(model, pos, path, atol=1e-4):
    """A model with a fixed sin-cos table computes it; a checkpoint's table must be that table
    (official MAE/CAE pretraining checkpoints store theirs), else the weights were trained with
    other positions and loading them would silently change what they compute."""
    pos = pos.reshape(-1, pos.shape[-1]).float()
    n = pos.shape[0]
    side = int(round((n - 1)**.5))
    prefix = 1 if side * side == n - 1 else 0
    side = int(round((n - prefix)**.5))
    if side * side != n - prefix:
        raise CheckpointError(path, f'pos_embed of {n} tokens is not a square grid')
    if prefix and pos[0].abs().max() > atol:
        raise CheckpointError(path, "the checkpoint's pos_embed has a non-zero class-token "
                              'slot, so it is a learned table (e.g. a fine-tuned model); build '
                              "the backbone with pos_embed='learned' to load it")
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
    raise CheckpointError(
        path, f"the checkpoint's pos_embed differs from this model's fixed sin-cos table "
        f"({model.sincos_order!r} order) by up to {diffs[model.sincos_order]:.3g}; {fix}")


def has_fixed_table(state):
    """A converted state dict without a position table whose model had a fixed one: every
    MAE/CAE-style encoder (patch embedding and blocks, no relative position tables)."""
    return ('patch_embed.proj.weight' in state and 'pos_embed' not in state
            and not any(t in k for k in state
                    for t in ('lookup_table_weight', 'rel_pos', 'relative_position')))


def fixed_table_for(model, grid_hw):
    """The pretraining's fixed table (model's order, ``pretrain_grid_hw``) resampled to
    ``grid_hw``, with zero class-token slots, (1, prefix + h*w, C)."""
    table = sincos_pos_embed_2d(model.pretrain_grid_hw, model.embed_dims, order=model.sincos_order)
    table = torch.cat([table.new_zeros(model.num_prefix_tokens, model.embed_dims), table])[None]
    return resample_abs_pos_embed(table, grid_hw, model.pretrain_grid_hw, model.num_prefix_tokens)


def _fit_decomposed_tables(state, own):
    """ViTDet's per-axis tables (``attn.rel_pos_h/w``) of another window or input size resized
    linearly to the model's length, as ``get_rel_pos`` (detectron2) resizes them when it meets
    them: the loaded model computes what the source computes at the new size."""
    notes = []
    for key in [k for k in state if k.endswith(('.rel_pos_h', '.rel_pos_w'))]:
        table, want = state[key], own.get(key)
        if want is not None and table.dim() == 2 and table.shape[1] == want.shape[1] \
                and table.shape[0] != want.shape[0]:
            state[key] = resize_rel_pos(table, want.shape[0])
            notes.append(f'{key} resized linearly {table.shape[0]} -> {want.shape[0]}')
    return notes


def resolve_pretrained(path):
    """The checkpoint of ``init_cfg=Pretrained`` names a checkpoint file, or the work dir of a
    training run: then the checkpoint its ``last_checkpoint`` names (mmengine writes it after
    every save), so a config can point at a pretraining run without knowing its schedule's last
    file name."""
    path = osp.expanduser(str(path))
    if not osp.isdir(path):
        return path
    last = osp.join(path, 'last_checkpoint')
    if not osp.isfile(last):
        raise MissingCheckpointError(path, 'is a directory without last_checkpoint (no run saved '
                                     'a checkpoint there yet): name a checkpoint file, or the '
                                     'work dir of a run that saved one')
    name = open(last).read().strip()
    if not osp.isfile(name) and osp.isfile(osp.join(path, osp.basename(name))):
        name = osp.join(path, osp.basename(name))  # the run's folder was moved or copied
    if not osp.isfile(name):
        raise MissingCheckpointError(path, f'its last_checkpoint names {name}, which does not '
                                     'exist: name a checkpoint file instead')
    return name


def load_pretrained_backbone(model, path, source='auto', min_match=0.5, logger=None):
    """Load a pretrained ViT checkpoint of any supported source into our ``VisionTransformer``.

    Converts the keys (:func:`.converters.convert_to_lomar_vit`), adapts the position
    embedding (class token dropped or added, grid resampled), prints what was loaded,
    missing, ignored and dropped, and refuses (:class:`CheckpointError`) when fewer than
    ``min_match`` of the model's tensors are found in the checkpoint, or when shapes disagree
    (another architecture), instead of silently training a random backbone. A checkpoint of ours
    written before format 3 (``blocks.N.*``, e.g. an older pretraining run) is migrated to
    ``layers.N.*`` and the report says so. Attention biases follow the model
    (:func:`.converters.fit_attention_biases`): a fused ``qkv.bias`` loads into ``q_bias`` /
    ``v_bias`` and the reverse.
    """
    path = resolve_pretrained(path)
    ckpt = read_checkpoint(path, 'cpu', missing_hint='check the path '
                           '(model.backbone.init_cfg.checkpoint)')
    try:
        state, dropped = convert_to_lomar_vit(ckpt, source)
    except ValueError as e:  # no ViT in it
        raise CheckpointError(path, str(e)) from e
    legacy = legacy_format(ckpt, source)
    own = model.state_dict()
    ignored = []
    # a fused qkv.bias into a q/v-bias model (k part dropped: softmax cancels it), or back
    biases = fit_attention_biases(state, own)
    if 'pos_embed' in state:
        pos = state.pop('pos_embed')
        if 'pos_embed' in own:
            if pos.shape[1] != own['pos_embed'].shape[1]:
                with_cls_position = int((pos.shape[1] - 1)**.5)**2 == pos.shape[1] - 1
                if model.num_prefix_tokens == 0 and with_cls_position:
                    pos = pos[:, 1:]  # checkpoint with a class token position, model without
                pos = resample_abs_pos_embed(pos, model.pos_grid_hw,
                                             num_prefix_tokens=model.num_prefix_tokens)
            state['pos_embed'] = pos
        elif model.pos_embed_type == 'sincos':
            _check_fixed_table(model, pos, path)  # the model's own table, or a clear refusal
        else:
            ignored.append('pos_embed (this model has no absolute position embedding)')
    elif model.pos_embed_type == 'learned' and has_fixed_table(state):
        # a learned table starts from the pretraining's fixed one, which checkpoints of a fixed
        # table do not store (ours compute it): rebuild it at the pretraining grid, then
        # resample it as a stored one (mmseg MAE / ViTDet interpolate the pretrained table)
        state['pos_embed'] = fixed_table_for(model, model.pos_grid_hw)
        ignored.append(f'pos_embed (not stored: started from the fixed sin-cos table, '
                       f'{model.sincos_order!r} order, {model.pretrain_grid_hw} grid)')
    resized = _fit_decomposed_tables(state, own)
    mask_token = state.get('mask_token')
    if mask_token is not None and mask_token.shape != own.get('mask_token', mask_token[:0]).shape:
        state.pop('mask_token')  # a decoder's (MAE/CAE) or a model without masking
        ignored.append('mask_token (not an encoder input of this model)')
    if getattr(model, 'fc_norm_from_norm', False) and 'fc_norm.weight' in own \
            and 'fc_norm.weight' not in state and 'norm.weight' in state:
        # CAE's fine-tuning starts the pooled-feature norm from the pretrained final norm
        # (run_class_finetuning.py:372-377); MAE and LoMaR start it anew
        for name in ('weight', 'bias'):
            state[f'fc_norm.{name}'] = state.pop(f'norm.{name}')
        ignored.append('norm (loaded as fc_norm)')
    if 'cls_token' in state and 'cls_token' not in own:
        state.pop('cls_token')
        ignored.append('cls_token (this model has no class token)')
    wrong = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
             for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:
        raise CheckpointError(path, 'does not fit this ViT (another architecture?): '
                              f'{len(wrong)} shape mismatches, e.g. {wrong[:3]}')
    matched = [k for k in own if k in state]
    if len(matched) < min_match * len(own):
        raise CheckpointError(
            path, f'refusing to load it: only {len(matched)} of the {len(own)} backbone tensors '
            f'are in it (after conversion from {source!r}); missing e.g. '
            f'{[k for k in own if k not in state][:5]}. Is it a ViT checkpoint of this size? '
            'Pass the right source (timm, mae, lomar, cae, mmpretrain).')
    result = model.load_state_dict(state, strict=False)
    lines = [f'loaded {len(matched)}/{len(own)} backbone tensors from {path}']
    if legacy:
        lines.append(f'  migrated: {describe_migration(legacy)}')
    lines += [f'  converted: {note}' for note in biases + resized]
    if result.missing_keys:
        lines.append(f'  new (not in the checkpoint, kept at their initialisation): '
                     f'{result.missing_keys}')
    if result.unexpected_keys or ignored:
        lines.append(f'  ignored: {result.unexpected_keys + ignored}')
    if dropped:
        lines.append(f'  dropped {len(dropped)} non-backbone keys, e.g. {dropped[:4]}')
    print_log('\n'.join(lines), logger=logger or 'current')
    return result
