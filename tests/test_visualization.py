"""Reconstruction pictures: lomar_transfer/visualization/reconstruction.py and its CLI.

The expected masks and predictions are computed here through the models' own modules (backbone,
neck/head) with the same seed, independently of the library's recording of ``loss``."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from lomar_transfer.cli.visualize_reconstruction import main
from lomar_transfer.datasets.synthetic import make_imagenet
from lomar_transfer.visualization.reconstruction import (GAP, GREY, TITLE_HEIGHT, WINDOW_COLOURS,
                                                         build_pretraining_model,
                                                         check_pretraining_config)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = dict(lomar='configs/lomar/lomar_vit-tiny-p8_synthetic.py',
               mae='configs/mae/mae_vit-tiny-p8_synthetic.py',
               cae='configs/cae/cae_vit-tiny-p8_synthetic.py')
PAPER_CONFIGS = dict(lomar='configs/lomar/lomar_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
                     mae='configs/mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
                     cae='configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e-pixel_in1k.py')
DALLE_CAE = 'configs/cae/cae_vit-base-p16_8xb256-amp-coslr-300e_in1k.py'
PREDICTOR = dict(lomar='head.predictor', mae='neck.decoder_pred', cae='neck.head')
SIZE, P, SEED = 112, 8, 3
G = SIZE // P  # 14x14 patch grid


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    return make_imagenet(tmp_path_factory.mktemp('data') / 'imagenet', num_train_per_class=1,
                         num_val_per_class=1)


def make_checkpoint(method, path):
    """The config's model, untrained, its pixel predictor scaled up so that predictions differ
    clearly from the patch means (xavier / CAE's std 0.02 give nearly flat patches)."""
    cfg = Config.fromfile(REPO / CONFIGS[method])
    model = build_pretraining_model(cfg)
    model.init_weights()
    layer = model.get_submodule(PREDICTOR[method])
    torch.manual_seed(0)
    torch.nn.init.normal_(layer.weight, std=0.2)
    torch.nn.init.normal_(layer.bias, std=0.5)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return cfg, model.eval()


def read_panels(path):
    grid = cv2.imread(str(path))[..., ::-1]
    assert grid.shape == (TITLE_HEIGHT + SIZE, 4 * SIZE + 3 * GAP, 3)
    return [grid[TITLE_HEIGHT:, i * (SIZE + GAP):i * (SIZE + GAP) + SIZE] for i in range(4)]


def patch_grid(img):
    """(H, W, C) -> (G*G, P*P*C) in the targets' (row, column, channel) order."""
    return img.reshape(G, P, G, P, -1).transpose(0, 2, 1, 3, 4).reshape(G * G, -1)


def expected_pixels(pred, image, mean, std):
    """Independent de-normalisation (float64): per-patch stats of the normalised true image,
    then the channel normalisation."""
    ref = patch_grid((image.astype(np.float64) - mean) / std)
    pred = pred * np.sqrt(ref.var(1, ddof=1, keepdims=True) + 1e-6) + ref.mean(1, keepdims=True)
    img = pred.reshape(G, G, P, P, 3).transpose(0, 2, 1, 3, 4).reshape(SIZE, SIZE, 3)
    return np.clip(img * std + mean, 0, 255).round()


@torch.no_grad()
def model_prediction(method, cfg, model, image):
    """(G*G,) masked patches, (G*G, P*P*3) predictions, LoMaR's (windows, 49) patch ids and
    masks, computed from the modules the algorithms call, seeded as the tool seeds."""
    mean, std = (np.array(cfg.data_preprocessor[k]) for k in ('mean', 'std'))  # RGB order
    x = torch.from_numpy(((image - mean) / std).astype(np.float32)).permute(2, 0, 1)[None]
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    pred = np.zeros((G * G, P * P * 3))
    windows = None
    if method == 'mae':
        latent, mask, ids_restore = model.backbone(x)
        pred[:] = model.neck(latent, ids_restore)[0].numpy()
        mask = mask[0].bool().numpy()
    elif method == 'lomar':
        latent, mask_w, ids = model.backbone(x, mask=True)
        out, ids, mask_w = model.head(latent).numpy(), ids.numpy(), mask_w.bool().numpy()
        count = np.zeros(G * G)
        for s in range(len(ids)):  # a patch masked in several windows: their mean prediction
            for j in np.flatnonzero(mask_w[s]):
                pred[ids[s, j]] += out[s, j]
                count[ids[s, j]] += 1
        mask = count > 0
        pred[mask] /= count[mask, None]
        windows = ids, mask_w
    else:
        from mmpretrain.datasets.transforms import BEiTMaskGenerator
        gen = BEiTMaskGenerator(input_size=(G, G), num_masking_patches=98, min_num_patches=16)
        mask = gen(dict())['mask'].flatten().astype(bool)
        m = torch.from_numpy(mask)[None]
        unmasked = model.backbone(x, m)
        pos = model.backbone.pos_embed[:, 1:]
        logits, _ = model.neck(unmasked[:, 1:], pos[:, m[0]], pos[:, ~m[0]])
        pred[mask] = logits[0].numpy()
    return mask, pred, windows, mean, std


def check_picture(method, cfg, model, png, source):
    inp, masked, recon, target = (p.astype(int) for p in read_panels(png))
    # the input: the source image, shorter side resized to 112 and centre-cropped
    src = Image.open(source).convert('RGB')
    scale = SIZE / min(src.size)
    src = src.resize((round(src.width * scale), round(src.height * scale)), Image.BICUBIC)
    left, top = (src.width - SIZE) // 2, (src.height - SIZE) // 2
    src = np.asarray(src.crop((left, top, left + SIZE, top + SIZE))).astype(int)
    assert np.abs(inp - src).mean() < 2

    mask, pred, windows, mean, std = model_prediction(method, cfg, model, inp.astype(np.uint8))
    if method == 'mae':
        assert mask.sum() == G * G - int(G * G * (1 - 0.75))
    elif method == 'cae':
        assert mask.sum() == 98
    else:  # 4 windows of 7x7, int(0.8 * 49) = 39 masked in each (they may overlap)
        ids, mask_w = windows
        assert ids.shape == (4, 49) and (mask_w.sum(1) == 39).all()
        assert mask.sum() == len(np.unique(ids[mask_w])) <= 4 * 39
    mask_px = mask.reshape(G, G).repeat(P, 0).repeat(P, 1)
    # LoMaR: each window outlined (1 pixel inside its border) in a window colour
    ring = np.zeros((SIZE, SIZE), bool)
    in_window = np.zeros((SIZE, SIZE), bool)
    if windows is not None:
        for window in windows[0]:
            r, c = window.min() // G * P, window.min() % G * P
            box = np.zeros_like(ring)
            box[r:r + 7 * P, c:c + 7 * P] = True
            in_window |= box
            box[r + 1:r + 7 * P - 1, c + 1:c + 7 * P - 1] = False
            ring |= box
        assert {tuple(v) for v in masked[ring]} <= set(WINDOW_COLOURS)
    # masked panel: grey exactly on the masked patches, the input elsewhere
    assert (masked[mask_px & ~ring] == GREY).all()
    np.testing.assert_array_equal(masked[~mask_px & ~ring], inp[~mask_px & ~ring])
    # reconstruction: the input on visible patches, the model's prediction on masked ones
    np.testing.assert_array_equal(recon[~mask_px], inp[~mask_px])
    want = expected_pixels(pred, inp, mean, std)
    assert np.abs(recon[mask_px] - want[mask_px]).max() <= 1
    assert np.abs(recon[mask_px] - inp[mask_px]).mean() > 5  # a prediction, not the input
    # target: normalised pixels de-normalised give the input back (LoMaR: inside its windows)
    known = in_window if method == 'lomar' else np.ones_like(mask_px)
    assert np.abs(target[known] - inp[known]).max() <= 1
    assert (target[~known] == GREY).all()


@pytest.mark.parametrize('method', ['lomar', 'mae', 'cae'])
def test_pictures(method, imagenet, tmp_path, monkeypatch, capsys):
    cfg, model = make_checkpoint(method, tmp_path / 'ckpt.pth')
    lines = (imagenet / 'meta/train.txt').read_text().split('\n')
    lines = [line.split()[0] for line in lines if line]
    sources = [imagenet / 'train' / lines[0], imagenet / 'train' / lines[-1]]
    args = [str(REPO / CONFIGS[method]), str(tmp_path / 'ckpt.pth'), '--seed', str(SEED)]
    if method == 'mae':
        args += ['--images', *map(str, sources), '--out-dir', str(tmp_path / 'out')]
        out_dir = tmp_path / 'out'
    else:  # first and last images of the config's train dataset; default output folder
        args += ['--num', '2', '--cfg-options', f'train_dataloader.dataset.data_root={imagenet}']
        monkeypatch.chdir(tmp_path)
        out_dir = tmp_path / 'work_dirs' / Path(CONFIGS[method]).stem / 'reconstruction'
    written = main(args)
    pngs = [out_dir / f'{s.stem}.png' for s in sources]
    assert sorted(Path(w).resolve() for w in written) == sorted(pngs)
    printed = capsys.readouterr().out
    assert all(f'{w}  {method}: ' in printed for w in written)
    for png, source in zip(pngs, sources):
        check_picture(method, cfg, model, png, source)


@pytest.mark.parametrize('method', ['lomar', 'mae', 'cae'])
def test_paper_configs_accepted(method):
    assert check_pretraining_config(Config.fromfile(REPO / PAPER_CONFIGS[method])) == method


@pytest.mark.slow
def test_user_errors_are_one_line(imagenet, tmp_path):
    ckpt = tmp_path / 'ckpt.pth'
    mae = str(REPO / CONFIGS['mae'])
    image = str(next((imagenet / 'train').glob('*/*.JPEG')))

    def error(*args, images=(image, )):
        with pytest.raises(SystemExit) as e:
            main([*map(str, args), '--images', *map(str, images), '--out-dir', str(tmp_path)])
        assert isinstance(e.value.code, str) and '\n' not in e.value.code
        return e.value.code

    assert 'checkpoint not found' in error(mae, ckpt)
    ckpt.write_bytes(b'\x00not a checkpoint')
    assert 'cannot read checkpoint' in error(mae, ckpt)
    make_checkpoint('lomar', ckpt)  # a checkpoint of another method
    assert 'does not fit the model of this config' in error(mae, ckpt)
    assert 'not a LoMaR/MAE/CAE pretraining config' in error(
        REPO / 'configs/mae/vit-tiny-p8_linear_synthetic-imagenet.py', ckpt)
    assert 'config file not found' in error(tmp_path / 'no.py', ckpt)
    assert 'cannot read image' in error(mae, ckpt, images=[ckpt])
    # DALL-E targets: no pixels; the tools/ wrapper exits with the line alone, no traceback
    result = subprocess.run([sys.executable, '-W', 'ignore', 'tools/visualize_reconstruction.py',
                             DALLE_CAE, str(ckpt)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert PAPER_CONFIGS['cae'] in result.stderr and 'DALL-E' in result.stderr


def test_checkpoint_of_format_2_is_accepted(tmp_path):
    """A pretraining checkpoint written before format 3 (the ViT's blocks under 'blocks.N.')
    fits the model of its config: the backbone migrates it to 'layers.N.' on load."""
    from conftest import format2_names
    from lomar_transfer.visualization.reconstruction import load_pretraining_checkpoint
    cfg, model = make_checkpoint('lomar', tmp_path / 'ckpt.pth')
    sd = model.state_dict()
    sd._metadata['backbone']['version'] = 2
    torch.save({'state_dict': format2_names(sd), 'meta': {}}, tmp_path / 'v2.pth')
    fresh = build_pretraining_model(cfg)
    load_pretraining_checkpoint(fresh, str(tmp_path / 'v2.pth'))
    got = fresh.state_dict()
    assert set(got) == set(sd) and all(torch.equal(got[k], v) for k, v in sd.items())
