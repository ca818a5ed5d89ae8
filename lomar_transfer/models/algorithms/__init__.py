from .maect import MAECT
from .lomar import LoMaR

__all__ = ['MAECT', 'LoMaR']
