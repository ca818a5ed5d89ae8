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
import re
import reprlib
import types
import zipfile

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .errors import UserError


class CheckpointError(UserError, RuntimeError):
    """A file given as a checkpoint that is none, or not this model's: ``{path}: {problem}``.
    Also a ``RuntimeError``, which torch and mmengine raise for bad checkpoints."""

    def __init__(self, path, problem):
        super().__init__(f'{path}: {problem}')


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """Also a ``FileNotFoundError``, for callers that catch that."""


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


class RefusedGlobal(pickle.UnpicklingError):
    """A checkpoint that would run code (its own message says which global)."""


def _history_buffer_getattr(obj, name):
    # pickle stores the functions HistoryBuffer.min/mean/... as getattr(HistoryBuffer, 'min')
    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and \
            name in _HISTORY_BUFFER_STATISTICS | set(HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise RefusedGlobal(
        f'checkpoint calls getattr({type(obj).__name__}, {name!r}); only HistoryBuffer '
        'statistics are allowed')


class _RestrictedUnpickler(pickle.Unpickler):

    def find_class(self, module, name):
        if module in ('builtins', '__builtin__') and name == 'getattr':
            return _history_buffer_getattr
        obj = _ALLOWED.get(f'{module}.{name}')
        if obj is None:
            raise RefusedGlobal(
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


_AGAIN = 'an interrupted download or copy? Download or copy it again'
# what torch.save(..., _use_new_zipfile_serialization=False) writes first
_LEGACY_MAGIC = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)


def _text_start(head):
    """The start of a text file (e.g. an HTML error page saved as the download), else None."""
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError as e:
        if e.reason != 'unexpected end of data':  # not a character cut by the read
            return None
        text = head[:e.start].decode('utf-8')
    return text if text and all(c.isprintable() or c.isspace() for c in text) else None


def describe_unreadable(path, exc):
    """What is wrong with a file that ``torch.load`` failed on (``exc``), from its bytes: torch's
    own errors ('invalid load key', 'could not find MARK', '[Errno 22]') do not say."""
    if isinstance(exc, RefusedGlobal):
        return str(exc)
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(256)
    text = _text_start(head)
    if size == 0:
        return f'is empty (0 bytes): {_AGAIN}'
    if head.startswith(b'PK\x03\x04'):  # a zip archive: torch's format since 1.6
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:  # the archive's directory is at its end
            return f'is truncated ({size} bytes, the end of its zip archive is missing): {_AGAIN}'
        if not any(n.endswith('/data.pkl') for n in names):
            return (f'is a zip archive but not a PyTorch checkpoint (no */data.pkl; it holds '
                    f'{reprlib.repr(names)})')
    elif head.startswith(_LEGACY_MAGIC):  # torch's format before 1.6: pickles, then the data
        return (f'is truncated or corrupted ({size} bytes; a PyTorch checkpoint of the pre-1.6 '
                f'format that fails to load, {type(exc).__name__}: {exc}): {_AGAIN}')
    elif head.startswith(b'\x80'):  # another pickle
        return f'is a Python pickle but not a PyTorch checkpoint ({type(exc).__name__}: {exc})'
    elif head[8:10] == b'{"':  # 8-byte header size, then a JSON header
        return ('is a safetensors file, not a PyTorch checkpoint: convert it with '
                'torch.save(safetensors.torch.load_file(path), new_path)')
    elif text is not None:
        return (f'is a text file, not a checkpoint (it starts with {text[:40]!r}'
                f'{"..." if len(text) > 40 else ""}): a wrong path, or an error page saved '
                'instead of the download?')
    else:
        return (f'is not a PyTorch checkpoint: neither a zip archive (torch >= 1.6) nor a pickle '
                f'(older torch); its first bytes are {head[:8]!r} ({size} bytes in all)')
    return f'cannot be read as a PyTorch checkpoint ({type(exc).__name__}: {exc})'


def _holds_weights(ckpt):
    from .converters import unwrap_checkpoint
    state = unwrap_checkpoint(ckpt)
    return isinstance(state, dict) and any(torch.is_tensor(v) for v in state.values())


def read_checkpoint(path, map_location=None, missing_hint='check the path'):
    """:func:`load_local_checkpoint` of a file that must hold weights, or one
    :class:`CheckpointError` naming the file and what is wrong with it: missing, empty,
    truncated, text, another format, or holding no tensors."""
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise MissingCheckpointError(path, 'is a directory, not a checkpoint file'
                                     if osp.isdir(path) else f'not found: {missing_hint}')
    try:
        ckpt = load_local_checkpoint(path, map_location)
    except Exception as e:  # torch raises all kinds on a bad file; each is the file's fault
        raise CheckpointError(path, describe_unreadable(path, e)) from e
    if not _holds_weights(ckpt):
        raise CheckpointError(
            path, f'holds {reprlib.repr(ckpt)} ({type(ckpt).__name__}), not weights: a dict of '
            "tensors, or a dict with them under 'state_dict', 'model' or 'module'")
    return ckpt


def _short(error):
    """torch's 'size mismatch for k: copying a param with shape torch.Size([2]) from
    checkpoint, the shape in current model is torch.Size([3]).' -> 'k: checkpoint [2] vs model
    [3]'."""
    m = re.match(r'size mismatch for (\S+): .*?torch\.Size\((.*?)\) from checkpoint, .*?'
                 r'torch\.Size\((.*?)\)', error)
    return f'{m[1]}: checkpoint {m[2]} vs model {m[3]}' if m else error.split('\n')[0][:200]


def check_fit(model, load, path, exact=False, min_match=0.5):
    """Run ``load()``, mmengine's loading of checkpoint ``path`` into ``model``, and refuse what
    it only warns about (it loads with strict=False, skipping tensors of another shape): fewer
    than ``min_match`` of the model's tensors loaded, i.e. another model's weights, or (``exact``,
    for resuming) any of them not loaded. Returns what ``load`` returns."""
    lists, report = {}, {}

    def grab(module, state_dict, prefix, meta, strict, missing, unexpected, errors):
        lists.update(missing=missing, unexpected=unexpected, errors=errors)

    def snapshot(module, incompatible):
        # the root's post hook runs last: after every module's own key migrations and before
        # mmengine appends its summary to the error list
        report.update({k: list(v) for k, v in lists.items()})

    handles = [model.register_load_state_dict_pre_hook(grab),
               model.register_load_state_dict_post_hook(snapshot)]
    try:
        result = load()
    finally:
        for handle in handles:
            handle.remove()
    if not report:
        return result
    missing = [k for k in report['missing'] if 'num_batches_tracked' not in k]
    total = len([k for k in model.state_dict() if 'num_batches_tracked' not in k])
    loaded = total - len(missing) - len(report['errors'])
    if loaded < (total if exact else min_match * total):
        parts = [f'{loaded} of its {total} tensors load']
        if report['errors']:
            parts.append(f"{len(report['errors'])} have another shape, e.g. "
                         f"{'; '.join(_short(e) for e in report['errors'][:2])}")
        if missing:
            parts.append(f'{len(missing)} are missing, e.g. {", ".join(missing[:2])}')
        if report['unexpected']:
            parts.append(f'it has instead e.g. {", ".join(report["unexpected"][:3])}')
        raise CheckpointError(path, (
            'does not fit this model exactly, so it cannot be resumed (a run of another config?)'
            if exact else "does not fit this model (another model's weights? A pretrained "
            'backbone goes in model.backbone.pretrained)') + ': ' + '; '.join(parts))
    return result


@CheckpointLoader.register_scheme(prefixes='', force=True)
def _load_from_local(filename, map_location=None):
    return read_checkpoint(filename, map_location)


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
    from .models.backbones.vision_transformer import resample_abs_pos_embed, sincos_pos_embed_2d
    table = sincos_pos_embed_2d(model.pretrain_grid_hw, model.embed_dims, order=model.sincos_order)
    table = torch.cat([table.new_zeros(model.num_prefix_tokens, model.embed_dims), table])[None]
    return resample_abs_pos_embed(table, grid_hw, model.pretrain_grid_hw, model.num_prefix_tokens)


def _fit_decomposed_tables(state, own):
    """ViTDet's per-axis tables (``attn.rel_pos_h/w``) of another window or input size resized
    linearly to the model's length, as detectron2 resizes them when it meets them
    (``modeling/backbone/utils.py:75-86``, our ``get_rel_pos``): the loaded model computes what
    the source computes at the new size."""
    import torch.nn.functional as F
    notes = []
    for key in [k for k in state if k.endswith(('.rel_pos_h', '.rel_pos_w'))]:
        table, want = state[key], own.get(key)
        if want is not None and table.dim() == 2 and table.shape[1] == want.shape[1] \
                and table.shape[0] != want.shape[0]:
            state[key] = F.interpolate(table.t()[None].float(), size=want.shape[0],
                                       mode='linear')[0].t().to(table.dtype)
            notes.append(f'{key} resized linearly {table.shape[0]} -> {want.shape[0]}')
    return notes


def load_pretrained_backbone(model, path, source='auto', min_match=0.5, logger=None):
    """Load a pretrained ViT checkpoint of any supported source into our ``VisionTransformer``.

    Converts the keys (:func:`lomar_transfer.converters.convert_to_lomar_vit`), adapts the
    position embedding (class token dropped or added, grid resampled), prints what was loaded,
    missing, ignored and dropped, and refuses (:class:`CheckpointError`) when fewer than
    ``min_match`` of the model's tensors are found in the checkpoint, or when shapes disagree
    (another architecture), instead of silently training a random backbone. A checkpoint of ours
    written before format 3 (``blocks.N.*``, e.g. an older pretraining run) is migrated to
    ``layers.N.*`` and the report says so. Attention biases follow the model
    (:func:`lomar_transfer.converters.fit_attention_biases`): a fused ``qkv.bias`` loads into
    ``q_bias`` / ``v_bias`` and the reverse.
    """
    from mmengine.logging import print_log

    from .converters import (convert_to_lomar_vit, describe_migration, fit_attention_biases,
                             legacy_format)
    from .models.backbones.vision_transformer import resample_abs_pos_embed
    ckpt = read_checkpoint(path, 'cpu', missing_hint='check the path '
                           '(model.backbone.pretrained / init_cfg.checkpoint)')
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
