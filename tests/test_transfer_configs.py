"""Each method's pretraining checkpoint -> stock Mask R-CNN (CocoMetric) and UperNet (IoUMetric)
through the synthetic transfer configs: loads the backbone, trains, evaluates."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO, retarget
from lomar_transfer.models import VisionTransformer

BACKBONE_OPTS = {
    'lomar': dict(rel_pos=True, pos_embed=None),
    'mae': dict(pos_embed='sincos'),
    'cae': dict(pos_embed='sincos', qkv_bias='qv', layer_scale_init_value=0.1),
}
TASKS = {'mask-rcnn': ('coco', 'coco/segm_mAP'), 'upernet': ('ade20k', 'mIoU')}


@pytest.mark.parametrize('task', list(TASKS))
@pytest.mark.parametrize('method', list(BACKBONE_OPTS))
def test_pretrained_backbone_trains_and_evaluates(method, task, synthetic_root, tmp_path):
    # a pretraining checkpoint of this method's architecture (class token, backbone.* keys)
    encoder = VisionTransformer(arch=dict(embed_dims=128, depth=4, num_heads=4,
                                          mlp_hidden_dims=512), patch_size=8, img_size=112,
                                **BACKBONE_OPTS[method])
    encoder.init_weights()
    ckpt = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in encoder.state_dict().items()}},
               ckpt)
    data, metric = TASKS[task]
    cfg = Config.fromfile(REPO / f'configs/{method}/{task}_vit-tiny-p8_synthetic-{data}.py')
    retarget(cfg._cfg_dict, 'data/synthetic', str(synthetic_root))
    cfg.model.backbone.pretrained = str(ckpt)
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 2
    cfg.param_scheduler = []
    runner = Runner.from_cfg(cfg)
    runner.train()
    log = next(tmp_path.glob('*/*.log')).read_text()
    n = len(runner.model.backbone.state_dict())
    assert f'loaded {n}/{n} backbone tensors from {ckpt}' in log
    # the trained backbone started from the checkpoint (layer decay keeps it close)
    blocks = runner.model.backbone.blocks
    assert torch.allclose(blocks[0].mlp.fc1.weight, encoder.blocks[0].mlp.fc1.weight, atol=0.05)
    metrics = runner.val_loop.run()
    assert metric in metrics and metrics[metric] >= 0
