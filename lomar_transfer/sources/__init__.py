"""Pretrained-weight sources: one module per source, each declaring ``SOURCE = Source(...)``.

A declaration is all the suite needs of a release: how its file is laid out (where the state dict
and the encoder sit, the key renames to ours, what auto-detection recognises it by, what it never
holds) and the ViT flags of its encoder (the preset). Adding a source is adding a file here; the
converters, ``init_cfg=Pretrained(source=...)``, ``lomar-convert --source`` and the suite's
``--methods`` read this table.
"""
import importlib
import pkgutil
from dataclasses import dataclass

# our block list's name (mmpretrain's) for timm's ``blocks.N.``: the rename most sources share
TIMM_RULES = ((r'^blocks\.(\d+)\.', r'layers.\1.'), )
# BEiT / CAE layer scales ``gamma_1/2`` -> ``ls1/2.gamma``
GAMMA_RULES = ((r'^blocks\.(\d+)\.gamma_([12])$', r'layers.\1.ls\2.gamma'), )


@dataclass(frozen=True)
class Source:
    """One release of pretrained ViT weights.

    name: the source's name (``--methods``, ``source=``).
    release: the files users download, and the repository whose code defines them.
    encoder: the ViT flags of its encoder (``VisionTransformer`` arguments beside the size).
    state_keys: where the state dict sits in the file's dict, the first present (e.g. DINO's
        full checkpoint: ``teacher``); none present: the file is the state dict.
    prefixes: where the encoder sits in the state dict, the first that some key starts with.
    rules: ``(pattern, replacement)`` renames to our keys; the first matching applies.
    marks: regular expressions over the file's top-level and state-dict keys; one matching (and
        none of ``unless``) tells auto-detection the file is this source's. None: never detected
        (its naming is another source's, e.g. MAE's is timm's).
    generic: its naming is shared by several releases: detected only when no other matches.
    needs, never: ``(pattern, what)`` that a file forced to this source must hold one of, or
        must not hold (a forced source the file contradicts is refused).
    pretraining: (target, epochs, data) of the release where its file or code says them.
    references: published numbers of the release, each ``dict(column, value, protocol,
        pretraining=(target, epochs or None), source)`` with the file:line it is read from;
        the suite lists them, beside a run only where protocol and pretraining match.
    """
    name: str
    release: str
    encoder: dict
    state_keys: tuple = ('state_dict', 'model', 'module')
    prefixes: tuple = ()
    rules: tuple = TIMM_RULES
    marks: tuple = None
    unless: tuple = ()
    generic: bool = False
    needs: tuple = ()
    never: tuple = ()
    pretraining: tuple = ()
    references: tuple = ()


def _load():
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith('_'):
            continue
        source = importlib.import_module(f'{__name__}.{info.name}').SOURCE
        if source.name in found:
            raise ValueError(f'two declarations of source {source.name!r}')
        found[source.name] = source
    return found


SOURCES = _load()
