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
    ``paramwise_cfg=dict(layer_decay_rate=0.65)`` as in mmpretrain.
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

        super().add_params(params, module, prefix=prefix, get_layer_depth=get_layer_depth,
                           **kwargs)
