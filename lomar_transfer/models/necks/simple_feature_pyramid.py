"""ViTDet's simple feature pyramid and the channels-first LayerNorm its heads use.

Re-derived from detectron2 ``modeling/backbone/vit.py`` (SimpleFeaturePyramid, lines 363-470)
and ``layers/batch_norm.py`` (LayerNorm, channels-first, eps 1e-6); mmdet's ViTDet project
(``projects/ViTDet/vitdet/simple_fpn.py``, ``layer_norm_impl.py``) is not in mmdet's wheel.
"""
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS


@MODELS.register_module(name='LN2d')
class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an (N, C, H, W) map (detectron2 ``layers/batch_norm.py``
    ``LayerNorm``, eps 1e-6).

    A plain module as detectron2's, not an ``nn.LayerNorm``: ViTDet decays its weights (its
    ``weight_decay_norm=0`` reaches only ``torch.nn`` norms, the blocks' LayerNorms), and so does
    mmengine's ``norm_decay_mult``. mmcv names it ``ln``. Use as
    ``norm_cfg=dict(type='lomar_transfer.LN2d', eps=1e-6)`` (mmcv's ``build_norm_layer`` would
    otherwise set eps 1e-5).
    """

    def __init__(self, num_channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """The pyramid of ViTDet: one stride-16 map -> strides 4, 8, 16, 32 (+ 64), no FPN.

    Scale 4: deconv C -> C/2, norm, GELU, deconv C/2 -> C/4; scale 2: deconv C -> C/2; scale 1:
    the map; scale 1/2: 2x2 max pooling. Each level then goes through a 1x1 and a 3x3 convolution
    to ``out_channels``, each followed by the norm (no bias, no activation), and the last level
    is subsampled once more (kernel 1, stride 2) for the RPN's fifth level (``LastLevelMaxPool``).

    Args:
        in_channels: channels of the ViT map (768 for ViT-B).
        out_channels: channels of every output level (256).
        scales: scale of each level relative to the input.
        norm_cfg: the norm after the deconvolution and the convolutions (ViTDet: LN).
        num_outs: ``len(scales) + 1`` adds the pooled top level (ViTDet); ``len(scales)`` not.
    """

    def __init__(self, in_channels=768, out_channels=256, scales=(4., 2., 1., 0.5),
                 norm_cfg=dict(type='lomar_transfer.LN2d', eps=1e-6), num_outs=5, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_outs not in (len(scales), len(scales) + 1):
            raise ValueError(f'num_outs must be {len(scales)} or {len(scales) + 1}')
        self.num_outs = num_outs
        self.stages = nn.ModuleList()
        for scale in scales:
            rescale, dims = self._rescale(in_channels, scale, norm_cfg)
            self.stages.append(nn.Sequential(
                rescale,
                ConvModule(dims, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None),
                ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg,
                           act_cfg=None)))

    def init_weights(self):
        super().init_weights()
        # detectron2 leaves these convolutions at PyTorch's default initialisation;
        # mmcv's ConvModule would apply Kaiming (fan-out, ReLU)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.reset_parameters()

    @staticmethod
    def _rescale(c, scale, norm_cfg):
        if scale == 4:
            return nn.Sequential(
                nn.ConvTranspose2d(c, c // 2, kernel_size=2, stride=2),
                build_norm_layer(norm_cfg, c // 2)[1], nn.GELU(),
                nn.ConvTranspose2d(c // 2, c // 4, kernel_size=2, stride=2)), c // 4
        if scale == 2:
            return nn.ConvTranspose2d(c, c // 2, kernel_size=2, stride=2), c // 2
        if scale == 1:
            return nn.Identity(), c
        if scale == 0.5:
            return nn.MaxPool2d(kernel_size=2, stride=2), c
        raise ValueError(f'scale {scale} is not supported (ViTDet: 4, 2, 1, 0.5)')

    def forward(self, inputs):
        x = inputs[-1]  # the last block's map
        outs = [stage(x) for stage in self.stages]
        if self.num_outs > len(outs):
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
