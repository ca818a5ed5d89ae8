"""Pictures of what the pretraining models do (``reconstruction``: masked-image reconstructions)."""
from .reconstruction import (Reconstruction, VisualizationError, build_pretraining_model,
                             compose_grid, load_pretraining_checkpoint, reconstruct, save_grid)

__all__ = ['Reconstruction', 'VisualizationError', 'build_pretraining_model', 'compose_grid',
           'load_pretraining_checkpoint', 'reconstruct', 'save_grid']
