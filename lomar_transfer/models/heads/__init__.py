from .nnclr_head import NNCLRHead
from .cae_pixel_head import CAEPixelHead, CAEPixelLoss
from .lomar_head import LoMaRHead

__all__ = ['NNCLRHead', 'LoMaRHead', 'CAEPixelHead', 'CAEPixelLoss']
