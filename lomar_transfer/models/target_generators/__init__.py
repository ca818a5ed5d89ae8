from .dalle_tokenizer import DALLETokenizer
from .pixel_target import PixelTarget

__all__ = ['PixelTarget', 'DALLETokenizer']
