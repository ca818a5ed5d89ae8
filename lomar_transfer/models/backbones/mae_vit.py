"""Our ViT with the encoder interface of mmpretrain's ``MAE`` algorithm (MAEViT's)."""
import torch

from ...registry import MODELS
from .vision_transformer import VisionTransformer, check_mask_flag


@MODELS.register_module()
class MAEPretrainViT(VisionTransformer):
    """With ``mask=True`` keeps a random ``1 - mask_ratio`` of the patches of every image (MAE's
    per-sample shuffle) and encodes only those, plus the class token.

    Returns ``(latent, mask, ids_restore)`` as mmpretrain's ``MAEViT`` does, so mmpretrain's
    ``MAE``, ``MAEPretrainDecoder`` and ``MAEPretrainHead`` train it unchanged. With
    ``mask=None`` it is the plain ViT (same keys), as used for transfer.
    """

    def __init__(self, mask_ratio=0.75, pos_embed='sincos', linear_init='xavier_uniform',
                 **kwargs):
        # xavier-uniform Linear layers as official MAE (models_mae.py:85-93)
        super().__init__(pos_embed=pos_embed, linear_init=linear_init, out_type='raw', **kwargs)
        if kwargs.get('rel_pos') or kwargs.get('window_size'):
            raise ValueError('MAE encodes a random subset of patches: relative position '
                             'encoding and windowed attention do not apply')
        if not 0 < mask_ratio < 1:
            raise ValueError(f'mask_ratio={mask_ratio} must lie in (0, 1): the share of patches '
                             'hidden from the encoder (MAE: 0.75)')
        self.mask_ratio = mask_ratio

    def random_masking(self, x):
        """x: (B, L, C) -> kept tokens (B, L_keep, C), mask (B, L) with 1 = removed, ids_restore."""
        b, length, c = x.shape
        keep = int(length * (1 - self.mask_ratio))
        ids_shuffle = torch.rand(b, length, device=x.device).argsort(dim=1)
        ids_restore = ids_shuffle.argsort(dim=1)
        ids_keep = ids_shuffle[:, :keep]
        x = x.gather(1, ids_keep[..., None].expand(-1, -1, c))
        mask = torch.ones(b, length, device=x.device)
        mask[:, :keep] = 0
        return x, mask.gather(1, ids_restore), ids_restore

    def forward(self, x, mask=True):
        if mask is None:
            return super().forward(x)
        check_mask_flag(mask, 'MAE')
        tokens, grid_hw = self.patch_embed(x)
        pos = self.abs_pos_embed(grid_hw)
        if pos is not None:
            tokens = tokens + pos[:, self.num_prefix_tokens:]
        tokens, mask, ids_restore = self.random_masking(tokens)
        if self.cls_token is not None:
            cls = self.cls_token if pos is None else self.cls_token + pos[:, :1]
            tokens = torch.cat([cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.encode(tokens), mask, ids_restore
