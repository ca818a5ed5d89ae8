"""LoMaR pretraining: windows, masking, loss, training, and transfer of the checkpoint."""
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO, retarget
from lomar_transfer.converters import convert_to_lomar_vit
from lomar_transfer.models import LoMaR, LoMaRViT, VisionTransformer
from lomar_transfer.registry import MODELS

TINY = dict(embed_dims=32, depth=2, num_heads=2, mlp_hidden_dims=64)


def tiny_lomar(**kw):
    cfg = dict(
        type='lomar_transfer.LoMaR',
        data_preprocessor=dict(type='mmpretrain.SelfSupDataPreprocessor', mean=[0, 0, 0],
                               std=[1, 1, 1]),
        backbone=dict(type='lomar_transfer.LoMaRViT', arch=TINY, patch_size=4, img_size=56, **kw),
        head=dict(type='lomar_transfer.LoMaRHead', in_channels=32, patch_size=4, norm_pix=True,
                  loss=dict(type='mmpretrain.PixelReconstructionLoss', criterion='L2')))
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_windows_lie_inside_grid_and_differ_between_images():
    vit = LoMaRViT(arch=TINY, patch_size=4, img_size=56)
    torch.manual_seed(0)
    ids = vit.sample_windows(16, (10, 13), 'cpu')  # non-square grid
    assert ids.shape == (16, 4, 49)
    rows, cols = ids // 13, ids % 13
    assert ids.min() >= 0 and rows.max() < 10 and cols.max() < 13
    # each window is a 7x7 block of neighbouring patches
    r0, c0 = rows[..., :1], cols[..., :1]
    offs = torch.arange(7)
    torch.testing.assert_close(rows - r0, offs.repeat_interleave(7).expand_as(rows))
    torch.testing.assert_close(cols - c0, offs.repeat(7).expand_as(cols))
    # positions are drawn per image: the 16 images do not share one set of windows
    assert len({tuple(w.tolist()) for w in ids[:, :, 0]}) > 1


def test_exact_number_masked_per_window():
    vit = LoMaRViT(arch=TINY, patch_size=4, img_size=56, mask_ratio=0.8)
    latent, mask, patch_ids = vit(torch.randn(3, 3, 56, 56), mask=True)
    assert latent.shape == (12, 50, 32) and mask.shape == (12, 49)
    assert (mask.sum(1) == round(0.8 * 49)).all()  # 39 per window
    assert len({tuple(m.nonzero().flatten().tolist()) for m in mask}) > 1


def test_masked_and_visible_tokens_are_encoded():
    """Unlike MAE, visible tokens of a window are encoder inputs: the output of a masked token
    changes when a visible patch of its window changes."""
    torch.manual_seed(0)
    vit = LoMaRViT(arch=TINY, patch_size=4, img_size=28).eval()  # 7x7 grid: one window position
    x = torch.randn(1, 3, 28, 28)
    torch.manual_seed(1)
    latent, mask, ids = vit(x, mask=True)
    visible = (~mask[0].bool()).nonzero()[0].item()
    pid = ids[0, 0, visible].item()
    x2 = x.clone()
    x2[..., (pid // 7) * 4:(pid // 7) * 4 + 4, (pid % 7) * 4:(pid % 7) * 4 + 4] += 1
    torch.manual_seed(1)
    latent2, mask2, _ = vit(x2, mask=True)
    assert torch.equal(mask, mask2)
    masked = mask[0].bool().nonzero()[0].item()
    assert not torch.allclose(latent[0, 1 + masked], latent2[0, 1 + masked])


def test_loss_ignores_visible_patches():
    model = tiny_lomar()
    x = torch.randn(2, 3, 56, 56)
    latent, mask, patch_ids = model.backbone(x, mask=True)
    pred = model.head(latent).detach().requires_grad_()
    loss = model.head.loss(pred, x, mask, patch_ids)
    loss.backward()
    grad_norm = pred.grad.abs().sum(-1)  # per patch
    assert (grad_norm[mask == 0] == 0).all()
    assert (grad_norm[mask == 1] > 0).all()


def test_synthetic_pretraining_loss_falls_and_checkpoint_transfers(synthetic_root, tmp_path):
    cfg = Config.fromfile(REPO / 'configs/lomar/lomar_vit-tiny-p8_synthetic.py')
    retarget(cfg._cfg_dict, 'data/synthetic', str(synthetic_root))
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.batch_size = 16
    cfg.train_cfg.max_iters = 40
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = 40
    cfg.default_hooks.logger.interval = 1
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model, LoMaR)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 40
    assert losses[-5:].mean() < 0.8 * losses[:5].mean(), losses

    state_dict, dropped = convert_to_lomar_vit(torch.load(tmp_path / 'iter_40.pth',
                                                          weights_only=False))
    assert sorted(dropped) == ['backbone.mask_token', 'head.predictor.bias',
                               'head.predictor.weight']
    backbone = cfg.model.backbone
    transfer = VisionTransformer(arch=backbone.arch, patch_size=8, img_size=112, pos_embed=None,
                                 rel_pos=True)
    result = transfer.load_state_dict(state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
