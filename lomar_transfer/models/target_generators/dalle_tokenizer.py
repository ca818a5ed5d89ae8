"""CAE's DALL-E tokenizer, refusing to run without its real weights."""
import os.path as osp

import torch
from torch import nn

from ...fileio import load_local_checkpoint
from ...registry import MODELS


@MODELS.register_module()
class DALLETokenizer(nn.Module):
    """mmpretrain's DALL-E encoder (CAE/BEiT target generator) with weights loaded at
    construction. The weights cannot be downloaded at run time here, and a randomly initialised
    tokenizer would silently produce meaningless targets, so a missing file is an error.

    Args:
        weights: path of ``dalle_encoder.pth`` (OpenMMLab's conversion of OpenAI's DALL-E
            encoder, the file mmpretrain's CAE config downloads).
    """

    def __init__(self, weights='data/dalle_encoder.pth'):
        super().__init__()
        if not osp.isfile(weights):
            raise FileNotFoundError(
                f'DALL-E tokenizer weights not found at {weights!r}. CAE with DALL-E targets '
                'needs them: download dalle_encoder.pth (the file mmpretrain\'s '
                'cae_beit-base-p16_8xb256-amp-coslr-300e_in1k.py config points to) on a machine '
                'with internet access and copy it there, or pass '
                "--cfg-options model.target_generator.weights=/path/to/dalle_encoder.pth. "
                'Offline, use the pixel-target CAE configs (cae_..._pixel...).')
        from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
        self.encoder = MMPRETRAIN_MODELS.build(dict(type='DALL-E'))
        state = load_local_checkpoint(weights, map_location='cpu')
        state = state.get('state_dict', state)
        missing, unexpected = self.encoder.load_state_dict(state, strict=False)
        if missing:
            raise RuntimeError(f'{weights} is not a DALL-E encoder checkpoint: {len(missing)} '
                               f'weights missing (e.g. {missing[:3]})')
        self.encoder.requires_grad_(False)

    @torch.no_grad()
    def forward(self, img):
        return self.encoder(img)
