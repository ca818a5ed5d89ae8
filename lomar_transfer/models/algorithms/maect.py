"""MAE-CT (contrastive tuning, arXiv 2304.10520) as an mmpretrain algorithm."""
import torch
from mmengine.model import ExponentialMovingAverage
from mmpretrain.models.selfsup import BaseSelfSupervisor

from ...registry import MODELS


@MODELS.register_module()
class MAECT(BaseSelfSupervisor):
    """backbone (a pretrained :class:`VisionTransformer` of any method, lower blocks frozen
    through ``frozen_stages``, pooled output) -> neck (projector MLP) -> head
    (:class:`NNCLRHead`: predictor, nearest-neighbour support queue, InfoNCE).

    Takes two augmented views per image (mmpretrain's ``MultiView`` transform). No labels.

    Args:
        head_init_iters: the paper's initialisation phase: for this many iterations only the
            projector and predictor learn (the encoder runs without gradient), so that the
            randomly initialised head does not send noise into the pretrained encoder. The
            count is a buffer of the model, so it survives ``--resume``. Under DDP the config
            needs ``find_unused_parameters = True`` (no encoder gradient in the phase).
        target_momentum: if set (MAE-CT: 0.99 for ViT-B/L, 0.995 for ViT-H), the queue and
            the neighbour lookup use an exponential moving average of the projector with this
            momentum instead of the projector itself.
    """

    def __init__(self, *args, head_init_iters=0, target_momentum=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_init_iters = head_init_iters
        self.register_buffer('step', torch.zeros((), dtype=torch.long))
        self.target_neck = None
        if target_momentum is not None:
            # mmengine's momentum is the weight of the new parameters
            self.target_neck = ExponentialMovingAverage(self.neck, momentum=1 - target_momentum)
            self.target_neck.requires_grad_(False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a head-phase checkpoint (MAE-CT's stage 2, no EMA projector) starts the EMA projector
        # of the tuning phase as its projector (official nnclr_ema_queue_head.py:11-17)
        target, neck = prefix + 'target_neck.', prefix + 'neck.'
        if self.target_neck is not None and not any(k.startswith(target) for k in state_dict):
            for k in [k for k in state_dict if k.startswith(neck)]:
                state_dict[target + 'module.' + k[len(neck):]] = state_dict[k]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extract_feat(self, inputs):
        return self.backbone(inputs)

    def loss(self, inputs, data_samples, **kwargs):
        head_only = bool(self.step < self.head_init_iters)
        self.step += 1
        with torch.set_grad_enabled(not head_only):
            f1, f2 = self.backbone(inputs[0]), self.backbone(inputs[1])
        z1, z2 = self.neck(f1)[0], self.neck(f2)[0]
        targets = None
        if self.target_neck is not None:
            self.target_neck.update_parameters(self.neck)
            with torch.no_grad():
                targets = self.target_neck(f1)[0], self.target_neck(f2)[0]
        ids = self.sample_ids(data_samples, z1.device)
        return dict(loss=self.head.loss(z1, z2, ids, targets))

    @staticmethod
    def sample_ids(data_samples, device):
        """Dataset indices of the batch's images (mmengine datasets set ``sample_idx``), so
        the head can keep an image from being its own neighbour; None where unknown."""
        if not data_samples or any('sample_idx' not in s for s in data_samples):
            return None
        return torch.tensor([s.sample_idx for s in data_samples], device=device)
