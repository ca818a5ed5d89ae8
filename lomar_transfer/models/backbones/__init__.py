from .cae_vit import CAEPretrainViT
from .lomar_vit import LoMaRViT
from .mae_vit import MAEPretrainViT
from .vision_transformer import VisionTransformer

__all__ = ['VisionTransformer', 'LoMaRViT', 'MAEPretrainViT', 'CAEPretrainViT']
