"""Pretrained weights of any supported release into our ``VisionTransformer``: converted,
adapted (position tables, attention biases), reported, or refused with the reason."""
import os.path as osp

from mmengine.logging import print_log

from ...fileio import CheckpointError, MissingCheckpointError, read_checkpoint
from .converters import CONVERTERS, convert_to_lomar_vit, describe_migration, legacy_format
from .weights import IncompatibleWeights, describe_size_mismatch, collecting_notes, load_and_record


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
    """Load a pretrained ViT checkpoint of any supported source into our ``VisionTransformer``:
    resolve the path, read the file, map its keys to ours
    (:func:`.converters.convert_to_lomar_vit`),
    load (the ViT's load hook adapts the weights to the model: :mod:`.weights`) and report what
    was loaded, converted, missing, ignored and dropped. Refuses (:class:`CheckpointError`) fewer
    than ``min_match`` of the model's tensors found, or any of another shape (another
    architecture), instead of silently training a random backbone."""
    path = resolve_pretrained(path)
    ckpt = read_checkpoint(path, 'cpu', missing_hint='check the path '
                           '(model.backbone.init_cfg.checkpoint)')
    try:
        state, dropped = convert_to_lomar_vit(ckpt, source)
    except ValueError as e:  # no ViT in it
        raise CheckpointError(path, str(e)) from e
    legacy = legacy_format(ckpt, source)
    total = len(model.state_dict())
    with collecting_notes(model) as notes:
        try:
            result, report = load_and_record(model, lambda: model.load_state_dict(state, False))
        except IncompatibleWeights as e:
            raise CheckpointError(path, str(e)) from e
    if report['errors']:
        raise CheckpointError(path, 'does not fit this ViT (another architecture?): '
                              f"{len(report['errors'])} shape mismatches, e.g. "
                              f"{[describe_size_mismatch(e) for e in report['errors'][:3]]}")
    matched = total - len(report['missing'])
    if matched < min_match * total:
        raise CheckpointError(
            path, f'refusing to load it: only {matched} of the {total} backbone tensors '
            f'are in it (after conversion from {source!r}); missing e.g. '
            f"{report['missing'][:5]}. Is it a ViT checkpoint of this size? "
            f'Pass the right source ({", ".join(CONVERTERS)}).')
    lines = [f'loaded {matched}/{total} backbone tensors from {path}']
    if legacy:
        lines.append(f'  migrated: {describe_migration(legacy)}')
    lines += [f'  {kind}: {text}' for kind, text in notes if kind != 'ignored']
    if report['missing']:
        lines.append(f"  new (not in the checkpoint, kept at their initialisation): "
                     f"{report['missing']}")
    ignored = report['unexpected'] + [text for kind, text in notes if kind == 'ignored']
    if ignored:
        lines.append(f'  ignored: {ignored}')
    if dropped:
        lines.append(f'  dropped {len(dropped)} non-backbone keys, e.g. {dropped[:4]}')
    print_log('\n'.join(lines), logger=logger or 'current')
    return result
