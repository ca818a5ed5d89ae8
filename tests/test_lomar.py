"""LoMaR pretraining: windows, masking, loss (training: test_pretraining.py)."""
import pytest
import torch

from lomar_transfer.models import LoMaRViT
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
    ids = vit.sample_windows(16, (10, 13), 'cpu').view(16, 4, 49)  # non-square grid
    image, ids = ids // 130, ids % 130
    assert (image == torch.arange(16).view(16, 1, 1)).all()  # an image's own windows
    rows, cols = ids // 13, ids % 13
    assert ids.min() >= 0 and rows.max() < 10 and cols.max() < 13
    # each window is a 7x7 block of neighbouring patches
    r0, c0 = rows[..., :1], cols[..., :1]
    offs = torch.arange(7)
    torch.testing.assert_close(rows - r0, offs.repeat_interleave(7).expand_as(rows))
    torch.testing.assert_close(cols - c0, offs.repeat(7).expand_as(cols))
    # positions are drawn per image: the 16 images do not share one set of windows
    assert len({tuple(w.tolist()) for w in ids[:, :, 0]}) > 1


def windows_seen(vit, batch, grid_hw):
    """image -> set of (top, left) of the windows it is paired with in one draw."""
    h, w = grid_hw
    ids = vit.sample_windows(batch, grid_hw, 'cpu')
    seen = {}
    for seq in ids:
        image, first = divmod(seq[0].item(), h * w)
        seen.setdefault(image, []).append(divmod(first, w))
    return seen


def test_official_window_sampling_reproduces_the_official_pairing():
    """window_sampling='official': one set of positions per batch with distinct rows and distinct
    columns, and sequence s = image s % B with window s % num_windows (models_lomar.py)."""
    vit = LoMaRViT(arch=TINY, patch_size=4, img_size=56, window_sampling='official')
    torch.manual_seed(0)
    seen = windows_seen(vit, 8, (14, 14))
    positions = {p for wins in seen.values() for p in wins}
    assert len(positions) == 4  # one set of 4 windows for the whole batch
    assert len({t for t, _ in positions}) == 4 and len({l for _, l in positions}) == 4
    # B = 8 is a multiple of 4 windows: each image sees a single position, four times
    assert all(len(set(wins)) == 1 and len(wins) == 4 for wins in seen.values())
    assert sorted(seen) == list(range(8))
    # B = 3: gcd(3, 4) = 1, so every image meets all four positions
    seen = windows_seen(vit, 3, (14, 14))
    assert all(len(set(wins)) == 4 for wins in seen.values())
    # the default sampler: each image its own draw, positions differ between images
    torch.manual_seed(0)
    seen = windows_seen(LoMaRViT(arch=TINY, patch_size=4, img_size=56), 8, (14, 14))
    assert all(len(wins) == 4 for wins in seen.values())
    assert len({p for wins in seen.values() for p in wins}) > 4


def test_official_window_sampling_needs_room_for_distinct_offsets():
    vit = LoMaRViT(arch=TINY, patch_size=4, img_size=40, window_sampling='official')
    with pytest.raises(ValueError, match='distinct'):
        vit.sample_windows(2, (8, 8), 'cpu')  # only 2 offsets per axis for 4 windows


def test_window_larger_than_the_patch_grid_is_refused_at_build_time():
    """img_size 24 with 4-pixel patches: a 6x6 grid, no room for 7x7 windows. Refused when the
    model is built (naming the window, the grid and the fix), not at the first forward pass;
    inputs smaller than img_size still meet the forward-time check."""
    with pytest.raises(ValueError) as err:
        LoMaRViT(arch=TINY, patch_size=4, img_size=24)
    msg = str(err.value)
    assert 'window_patches=7' in msg and '6x6 patch grid' in msg and 'img_size=24' in msg
    assert 'img_size >= 28' in msg and 'window_patches <= 6' in msg
    with pytest.raises(ValueError, match='7x6 patch grid'):  # the width alone too small
        LoMaRViT(arch=TINY, patch_size=4, img_size=(28, 24))
    with pytest.raises(ValueError, match='window_patches=8.*7x7 patch grid'):  # whole patches
        LoMaRViT(arch=TINY, patch_size=4, img_size=30, window_patches=8)
    vit = LoMaRViT(arch=TINY, patch_size=4, img_size=24, window_patches=6)  # fits exactly
    assert vit(torch.randn(1, 3, 24, 24), mask=True)[0].shape == (4, 37, 32)
    with pytest.raises(ValueError, match='a 5x5 patch grid cannot hold 6x6 windows'):
        vit(torch.randn(1, 3, 20, 20), mask=True)


def test_exact_number_masked_per_window():
    vit = LoMaRViT(arch=TINY, patch_size=4, img_size=56, mask_ratio=0.8)
    latent, mask, patch_ids = vit(torch.randn(3, 3, 56, 56), mask=True)
    assert latent.shape == (12, 50, 32) and mask.shape == (12, 49)
    assert (mask.sum(1) == int(0.8 * 49)).all()  # 39 per window (official: int)
    assert LoMaRViT(arch=TINY, window_patches=4, mask_ratio=0.85).num_masked == 13  # not 14
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
    pid = ids[0, visible].item()
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


def test_window_targets_equal_mmpretrain_targets_of_the_same_patches():
    from lomar_transfer.models import LoMaRHead
    head = LoMaRHead(in_channels=32, patch_size=8,
                     loss=dict(type='mmpretrain.PixelReconstructionLoss', criterion='L2'))
    img = torch.randn(3, 3, 48, 48)  # mmpretrain's patchify takes square images only
    ids = torch.randint(0, 36, (3, 2, 9))
    full = head.construct_target(img)  # every patch, mmpretrain's MAE target
    expected = full[torch.arange(3)[:, None], ids.flatten(1)].view(6, 9, -1)
    ids = (ids + 36 * torch.arange(3).view(3, 1, 1)).view(6, 9)  # batch-grid ids
    torch.testing.assert_close(head.window_targets(img, ids), expected)


@pytest.mark.parametrize('norm_pix', [True, False])
def test_cae_pixel_target_is_mmpretrains_mae_target(norm_pix):
    """CAE's pixel target (every patch) and LoMaR's window targets share one gather and one
    normalisation; both equal mmpretrain's MAE target (patchify order, norm_pix)."""
    from mmpretrain.models.heads import MAEPretrainHead

    from lomar_transfer.models.target_generators import PixelTarget
    mae = MAEPretrainHead(loss=dict(type='mmpretrain.PixelReconstructionLoss', criterion='L2'),
                          norm_pix=norm_pix, patch_size=8)
    img = torch.randn(2, 3, 48, 48)
    torch.testing.assert_close(PixelTarget(patch_size=8, norm_pix=norm_pix)(img),
                               mae.construct_target(img))
