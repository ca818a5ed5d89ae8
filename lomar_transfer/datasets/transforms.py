"""Data transforms that mmdet lacks in the form a protocol needs."""
import numpy as np
from mmdet.datasets.transforms import RandomCrop

from ..registry import TRANSFORMS


@TRANSFORMS.register_module()
class FixedSizeCrop(RandomCrop):
    """mmdet's ``RandomCrop`` with detectron2's offset: one uniform draw scales both margins.

    detectron2's ``FixedSizeCrop`` (data/transforms/augmentation_impl.py:338-341, the crop of
    ViTDet's large-scale jitter) takes ``round(margin * u)`` with a single ``u ~ U(0, 1)`` for
    height and width, so crops lie on the diagonal from the top-left to the bottom-right
    corner; mmdet draws the two offsets independently. Everything else (boxes, masks, the
    boxes recomputed from the cropped masks, empty crops) is mmdet's.
    """

    def _rand_offset(self, margin):
        u = np.random.uniform(0.0, 1.0)
        return tuple(int(v) for v in np.round(np.multiply(margin, u)))
