"""Our ViT with the encoder interface of mmpretrain's ``CAE`` algorithm (CAEPretrainViT's)."""
import torch

from ...registry import MODELS
from .vision_transformer import VisionTransformer


@MODELS.register_module()
class CAEPretrainViT(VisionTransformer):
    """With a boolean ``mask`` (B, L; True = masked) encodes only the visible patches plus the
    class token, as mmpretrain's ``CAEPretrainViT``; with ``mask=None`` it is the plain ViT.

    CAE defaults: q/v-only qkv bias, LayerScale 0.1, fixed 2-D sin-cos position embedding in CAE's
    channel order, xavier-uniform Linear layers. The
    algorithm reads ``backbone.pos_embed`` (1, 1 + L, C) to give the regressor/decoder the
    positions of the masked patches: it is a non-persistent buffer here, so checkpoints keep
    exactly the keys of the transfer ViT.
    """

    def __init__(self, qkv_bias='qv', layer_scale_init_value=0.1, pos_embed='sincos',
                 sincos_order='cae', linear_init='xavier_uniform', **kwargs):
        # xavier: the official model re-initialises every Linear so (modeling_cae.py:54-55,75-78)
        super().__init__(qkv_bias=qkv_bias, layer_scale_init_value=layer_scale_init_value,
                         pos_embed=pos_embed, sincos_order=sincos_order,
                         linear_init=linear_init, out_type='raw', **kwargs)
        if pos_embed != 'sincos':
            raise ValueError("CAEPretrainViT uses the fixed pos_embed='sincos'")
        del self.pos_embed
        self.register_buffer('pos_embed', self.abs_pos_embed(self.grid_hw), persistent=False)

    def forward(self, x, mask=None):
        if mask is None:
            return super().forward(x)
        if not torch.is_tensor(mask):
            raise ValueError(f'CAE pretraining view: mask={mask!r}; pass the (B, h*w) boolean '
                             'mask from the mask generator, or mask=None for the plain ViT')
        tokens, grid_hw = self.patch_embed(x)
        if grid_hw != self.grid_hw:
            raise ValueError(f'CAE pretraining expects a {self.grid_hw} patch grid (img_size), '
                             f'got {grid_hw}')
        b, _, c = tokens.shape
        pos = self.pos_embed[:, self.num_prefix_tokens:].expand(b, -1, -1)
        tokens = (tokens + pos)[~mask].reshape(b, -1, c)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        return self.encode(torch.cat([cls, tokens], dim=1))
