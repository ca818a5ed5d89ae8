from .lomar_vit import LoMaRViT
from .vision_transformer import VisionTransformer

__all__ = ['VisionTransformer', 'LoMaRViT']
