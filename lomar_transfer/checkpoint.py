"""Safe loading of local checkpoints, including mmengine's own training checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses mmengine 0.10.7's training
checkpoints: their ``message_hub`` pickles ``HistoryBuffer`` objects, which hold their statistics
functions (pickled as ``getattr(HistoryBuffer, 'mean')``), plus numpy arrays. Turning
``weights_only`` off would let any checkpoint run code. Instead, a checkpoint that the weights-only loader refuses is read by an
unpickler that allows torch's weights-only globals, numpy arrays/scalars, ``HistoryBuffer`` and
``getattr`` restricted to a ``HistoryBuffer``'s statistics methods; anything else is refused with
an error naming the global.

Registered as mmengine's loader for local paths when ``lomar_transfer`` is imported, so every
Runner (mmpretrain, mmdet, mmseg) that uses our ``custom_imports`` can resume and test.
"""
import os.path as osp
import pickle
import types

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


def _allowed_globals():
    allowed = {
        'numpy.core.multiarray._reconstruct': np.core.multiarray._reconstruct,
        'numpy.core.multiarray.scalar': np.core.multiarray.scalar,
        'numpy.ndarray': np.ndarray,
        'numpy.dtype': np.dtype,
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
    }
    for name in dir(np.dtypes):  # numpy >= 1.25 pickles dtypes by their class
        cls = getattr(np.dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            allowed[f'numpy.dtypes.{name}'] = cls
    from torch import _weights_only_unpickler  # torch's own weights-only allowlist
    allowed.update(_weights_only_unpickler._get_allowed_globals())
    allowed.update(_weights_only_unpickler._get_user_allowed_globals())
    return allowed


# HistoryBuffer's default statistics (registered lazily by its first instance) + custom ones
_HISTORY_BUFFER_STATISTICS = {'min', 'max', 'current', 'mean'}


def _history_buffer_getattr(obj, name):
    # pickle stores the functions HistoryBuffer.min/mean/... as getattr(HistoryBuffer, 'min')
    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and \
            name in _HISTORY_BUFFER_STATISTICS | set(HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint calls getattr({type(obj).__name__}, {name!r}); only HistoryBuffer '
        'statistics are allowed')


class _RestrictedUnpickler(pickle.Unpickler):

    def find_class(self, module, name):
        if module in ('builtins', '__builtin__') and name == 'getattr':
            return _history_buffer_getattr
        obj = _ALLOWED.get(f'{module}.{name}')
        if obj is None:
            raise pickle.UnpicklingError(
                f'checkpoint references {module}.{name}, which lomar_transfer does not load '
                '(it could run code). If you trust this file, convert it once with '
                'torch.load(path, weights_only=False) and save only its state_dict.')
        return obj


_ALLOWED = _allowed_globals()
# torch.load(pickle_module=...) only needs ``Unpickler`` (and ``load`` for the legacy format).
restricted_pickle = types.SimpleNamespace(
    Unpickler=_RestrictedUnpickler,
    load=lambda f, **kw: _RestrictedUnpickler(f, **kw).load(),
    __name__='lomar_transfer_restricted_pickle')


def load_local_checkpoint(filename, map_location=None):
    """``torch.load`` that accepts weights and mmengine training checkpoints, and nothing else."""
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        return torch.load(filename, map_location=map_location, weights_only=False,
                          pickle_module=restricted_pickle)


@CheckpointLoader.register_scheme(prefixes='', force=True)
def _load_from_local(filename, map_location=None):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found')
    return load_local_checkpoint(filename, map_location)


def _check_fixed_table(model, pos, path, atol=1e-4):
    """A model with a fixed sin-cos table computes it; a checkpoint's table must be that table
    (official MAE/CAE pretraining checkpoints store theirs), else the weights were trained with
    other positions and loading them would silently change what they compute."""
    from .models.backbones.vision_transformer import SINCOS_ORDERS, sincos_pos_embed_2d
    pos = pos.reshape(-1, pos.shape[-1]).float()
    n = pos.shape[0]
    side = int(round((n - 1)**.5))
    prefix = 1 if side * side == n - 1 else 0
    side = int(round((n - prefix)**.5))
    if side * side != n - prefix:
        raise RuntimeError(f'{path!r}: pos_embed of {n} tokens is not a square grid')
    if prefix and pos[0].abs().max() > atol:
        raise RuntimeError(f"{path!r}: the checkpoint's pos_embed has a non-zero class-token "
                           'slot, so it is a learned table (e.g. a fine-tuned model); build the '
                           "backbone with pos_embed='learned' to load it")
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
    raise RuntimeError(
        f"{path!r}: the checkpoint's pos_embed differs from this model's fixed sin-cos table "
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
    from .models.backbones.vision_transformer import resample_abs_pos_embed, sincos_pos_embed_2d
    table = sincos_pos_embed_2d(model.pretrain_grid_hw, model.embed_dims, order=model.sincos_order)
    table = torch.cat([table.new_zeros(model.num_prefix_tokens, model.embed_dims), table])[None]
    return resample_abs_pos_embed(table, grid_hw, model.pretrain_grid_hw, model.num_prefix_tokens)


def load_pretrained_backbone(model, path, source='auto', min_match=0.5, logger=None):
    """Load a pretrained ViT checkpoint of any supported source into our ``VisionTransformer``.

    Converts the keys (:func:`lomar_transfer.converters.convert_to_lomar_vit`), adapts the
    position embedding (class token dropped or added, grid resampled), prints what was loaded,
    missing, ignored and dropped, and refuses (``RuntimeError``) when fewer than ``min_match`` of
    the model's tensors are found in the checkpoint, or when shapes disagree (another
    architecture), instead of silently training a random backbone. A checkpoint of ours written
    before format 3 (``blocks.N.*``, e.g. an older pretraining run) is migrated to ``layers.N.*``
    and the report says so.
    """
    from mmengine.logging import print_log

    from .converters import convert_to_lomar_vit, describe_migration, legacy_format
    from .models.backbones.vision_transformer import resample_abs_pos_embed
    if not osp.isfile(path):
        raise FileNotFoundError(f'pretrained checkpoint {path!r} not found: check the path '
                                '(model.backbone.pretrained / init_cfg.checkpoint)')
    try:
        ckpt = load_local_checkpoint(path, map_location='cpu')
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
        raise RuntimeError(f'cannot read checkpoint {path!r} ({type(e).__name__}: {e}); is it '
                           'truncated or not a PyTorch checkpoint?') from e
    state, dropped = convert_to_lomar_vit(ckpt, source)
    legacy = legacy_format(ckpt, source)
    own = model.state_dict()
    ignored = []
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
        raise RuntimeError(f'{path!r} does not fit this ViT (another architecture?): '
                           f'{len(wrong)} shape mismatches, e.g. {wrong[:3]}')
    matched = [k for k in own if k in state]
    if len(matched) < min_match * len(own):
        raise RuntimeError(
            f'refusing to load {path!r}: only {len(matched)} of the {len(own)} backbone tensors '
            f'are in it (after conversion from {source!r}); missing e.g. '
            f'{[k for k in own if k not in state][:5]}. Is it a ViT checkpoint of this size? '
            'Pass the right source (timm, mae, lomar, cae, mmpretrain).')
    result = model.load_state_dict(state, strict=False)
    lines = [f'loaded {len(matched)}/{len(own)} backbone tensors from {path}']
    if legacy:
        lines.append(f'  migrated: {describe_migration(legacy)}')
    if result.missing_keys:
        lines.append(f'  new (not in the checkpoint, kept at their initialisation): '
                     f'{result.missing_keys}')
    if result.unexpected_keys or ignored:
        lines.append(f'  ignored: {result.unexpected_keys + ignored}')
    if dropped:
        lines.append(f'  dropped {len(dropped)} non-backbone keys, e.g. {dropped[:4]}')
    print_log('\n'.join(lines), logger=logger or 'current')
    return result
