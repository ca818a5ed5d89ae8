from .simple_feature_pyramid import LayerNorm2d, SimpleFeaturePyramid
from .vit_feature_pyramid import ViTFeaturePyramid

__all__ = ['ViTFeaturePyramid', 'SimpleFeaturePyramid', 'LayerNorm2d']
