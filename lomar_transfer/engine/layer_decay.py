"""Layer-wise learning-rate decay for any model whose backbone is our ViT."""
from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-decay constructor, usable from mmdet / mmseg models too.

    mmpretrain's classifier exposes ``get_layer_depth``; mmdet's detectors and mmseg's segmentors
    do not. This asks the backbone instead (``backbone.get_layer_depth(name, 'backbone.')``):
    embeddings get ``rate ** (depth + 1)``, block i ``rate ** (depth - i)``, and everything outside
    the backbone (necks, heads) the base lr. Configure with
    ``paramwise_cfg=dict(layer_decay_rate=0.65)`` as in mmpretrain. A custom key's ``lr_mult``
    multiplies the decayed lr, as mmengine's default constructor does (mmpretrain's drops it):
    ``custom_keys={'pos_embed': dict(lr_mult=0.)}`` keeps CAE's resampled table frozen.
    """

    def add_params(self, params, module, prefix='', get_layer_depth=None, **kwargs):
        if prefix == '' and get_layer_depth is None and not hasattr(module, 'get_layer_depth'):
            backbone = getattr(module, 'backbone', None)
            if not hasattr(backbone, 'get_layer_depth'):
                raise NotImplementedError(
                    f'layer-wise lr decay needs {type(module).__name__} or its backbone to '
                    'define get_layer_depth (our VisionTransformer does)')

            def get_layer_depth(name):
                return backbone.get_layer_depth(name, prefix='backbone.')

        first = len(params)
        super().add_params(params, module, prefix=prefix, get_layer_depth=get_layer_depth,
                           **kwargs)
        if prefix == '':
            for group in params[first:]:
                if 'lr_mult' in group:
                    group['lr'] *= group.pop('lr_mult')
