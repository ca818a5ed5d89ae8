"""Multi-scale maps from a plain ViT for FPN / UperNet heads."""
import math

from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS


@MODELS.register_module()
class ViTFeaturePyramid(BaseModule):
    """Rescale single-stride ViT feature maps to a pyramid.

    One input map: ViTDet's simple feature pyramid (every scale from the last block). As many
    inputs as scales: BEiT/CAE's fpn1-4 (scale i applied to the i-th chosen block, e.g. blocks
    3, 5, 7, 11). Scale 2**k > 1: k stride-2 transposed convolutions (norm + GELU in between);
    1: identity; 1/2**k: max pooling. mmseg's ``Feature2Pyramid`` does the per-block case for
    scales (4, 2, 1, 0.5) only; this one also takes a single map and any power of two (the
    stride-8 CPU ViTs need 0.25), and registers where mmdet configs find it.

    Args:
        in_channels: channels of the ViT maps (kept).
        scales: output scale of each level relative to the input, e.g. (4, 2, 1, 0.5) for a
            stride-16 ViT -> strides 4, 8, 16, 32.
        norm_cfg: norm between the transposed convolutions (BN here; SyncBN on GPUs).
    """

    def __init__(self, in_channels, scales=(4, 2, 1, 0.5), norm_cfg=dict(type='BN'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.scales = tuple(scales)
        self.levels = nn.ModuleList([self._level(in_channels, s, norm_cfg) for s in scales])

    @staticmethod
    def _level(c, scale, norm_cfg):
        k = math.log2(scale)
        if k != int(k):
            raise ValueError(f'scales must be powers of two, got {scale}')
        k = int(k)
        if k <= 0:
            return nn.MaxPool2d(2**-k) if k else nn.Identity()
        layers = []
        for i in range(k):
            if i:
                layers += [build_norm_layer(norm_cfg, c)[1], nn.GELU()]
            layers.append(nn.ConvTranspose2d(c, c, kernel_size=2, stride=2))
        return nn.Sequential(*layers)

    def forward(self, inputs):
        inputs = tuple(inputs)
        if len(inputs) == 1:
            inputs = inputs * len(self.levels)
        if len(inputs) != len(self.levels):
            raise ValueError(f'{len(inputs)} feature maps for {len(self.levels)} scales: give '
                             'one map (ViTDet) or one per scale (BEiT/CAE)')
        return tuple(level(x) for level, x in zip(self.levels, inputs))
