"""Synthetic pretraining of LoMaR, MAE and CAE through mmengine's Runner; the checkpoints load
into the transfer ViT with zero missing keys."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO, retarget
from lomar_transfer.converters import convert_to_lomar_vit
from lomar_transfer.models import VisionTransformer

TINY_TRANSFER = dict(arch=dict(embed_dims=128, depth=4, num_heads=4, mlp_hidden_dims=512),
                     patch_size=8, img_size=112)
METHODS = {  # config, iterations, transfer ViT options, pretraining-only keys
    'lomar': ('configs/lomar/lomar_vit-tiny-p8_synthetic.py', 40,
              dict(pos_embed=None, rel_pos=True), ['backbone.mask_token', 'head.']),
    'mae': ('configs/mae/mae_vit-tiny-p8_synthetic.py', 12, dict(pos_embed='sincos'),
            ['neck.']),
    'cae': ('configs/cae/cae_vit-tiny-p8_synthetic.py', 12,
            dict(pos_embed='sincos', qkv_bias='qv', layer_scale_init_value=0.1),
            ['teacher.', 'neck.']),
}


@pytest.mark.parametrize('method', list(METHODS))
def test_synthetic_pretraining_trains_and_transfers(method, synthetic_root, tmp_path):
    config, iters, transfer_opts, extra_prefixes = METHODS[method]
    cfg = Config.fromfile(REPO / config)
    retarget(cfg._cfg_dict, 'data/synthetic', str(synthetic_root))
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.batch_size = 16
    cfg.train_cfg.max_iters = iters
    cfg.param_scheduler = []  # constant lr: a short run still learns
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == iters and all(map(lambda v: v == v, losses))  # finite
    assert losses[-3:].mean() < losses[:3].mean(), losses
    if method == 'lomar':  # the criterion: falls within a few dozen iterations
        assert losses[-5:].mean() < 0.8 * losses[:5].mean(), losses

    ckpt = torch.load(tmp_path / f'iter_{iters}.pth', weights_only=False)
    state_dict, dropped = convert_to_lomar_vit(ckpt)
    assert all(any(k.startswith(p) for p in extra_prefixes) for k in dropped), dropped
    transfer = VisionTransformer(**TINY_TRANSFER, **transfer_opts)
    result = transfer.load_state_dict(state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # the transfer ViT computes what the pretrained encoder computes on a full image
    backbone = runner.model.backbone.eval()
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        ref = backbone(x, mask=None)[0]
        torch.testing.assert_close(transfer.eval()(x)[0], ref.transpose(1, 2)[:, :, 1:].reshape(
            1, 128, 14, 14), atol=1e-5, rtol=0)


def test_cae_dalle_config_fails_without_tokenizer_weights(tmp_path):
    cfg = Config.fromfile(REPO / 'configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e_in1k.py')
    cfg.model.target_generator.weights = str(tmp_path / 'dalle_encoder.pth')
    from mmpretrain.registry import MODELS
    with pytest.raises(FileNotFoundError, match='dalle_encoder.pth.*pixel-target'):
        MODELS.build(cfg.model)
