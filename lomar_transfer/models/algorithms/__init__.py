from .lomar import LoMaR

__all__ = ['LoMaR']
