from .lomar_head import LoMaRHead

__all__ = ['LoMaRHead']
