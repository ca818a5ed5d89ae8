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
    ``flat_decay_mult`` and ``bias_decay_mult`` apply to 1-D parameters and biases whatever
    custom key matches them (mmpretrain lets a custom key's ``decay_mult`` win).
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
        if prefix != '':
            return
        flat = self.paramwise_cfg.get('flat_decay_mult')
        bias = self.paramwise_cfg.get('bias_decay_mult')
        for group in params[first:]:
            if 'lr_mult' in group:
                group['lr'] *= group.pop('lr_mult')
            # 1-D parameters and biases keep their rule under a custom key too (MAE-CT's
            # optimizer_wrapper.py:71-76 exempts them in the head, whose weights decay at 1e-5)
            p = group['params'][0]
            if self.base_wd is not None and 'weight_decay' in group:
                if flat is not None and p.ndim == 1:
                    group['weight_decay'] = self.base_wd * flat
                elif bias is not None and group['param_name'].endswith('.bias'):
                    group['weight_decay'] = self.base_wd * bias
