"""Attention maps: our last block's weights equal the official ones (DINO's
``get_last_selfattention``), and ``lomar-visualize-attention`` draws class-token maps of two
sources and a patch's map of a backbone without class token."""
import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, weights
from lomar_transfer.cli.visualize_attention import main
from lomar_transfer.visualization.reconstruction import GAP, TITLE_HEIGHT
from official_sources import HEADS, IMG
from test_sources import dino_full, mocov3, ours


def test_last_attention_equals_dinos(tmp_path):
    official, ckpt = dino_full()
    torch.save(ckpt, tmp_path / 'dino.pth')
    model = ours('dino', init_cfg=weights(tmp_path / 'dino.pth'))
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        got, grid = model.last_attention(x)
        torch.testing.assert_close(got, official.get_last_selfattention(x), atol=1e-5, rtol=0)
    assert grid == (IMG // 16, IMG // 16)


@pytest.fixture
def image(tmp_path):
    """A picture with one bright square on a dark ground."""
    img = np.full((IMG, IMG, 3), 30, np.uint8)
    img[32:64, 48:80] = (250, 200, 40)
    path = tmp_path / 'square.png'
    cv2.imwrite(str(path), img)
    return path


@pytest.mark.parametrize('source, make', [('dino', dino_full), ('mocov3', mocov3)])
def test_sources_get_class_token_maps(tmp_path, capsys, image, source, make):
    _, ckpt = make()
    torch.save(ckpt, tmp_path / f'{source}.pth')
    out, = main([source, str(tmp_path / f'{source}.pth'), '--images', str(image), '--img-size',
                 str(IMG), '--num-heads', str(HEADS), '--out-dir', str(tmp_path / 'maps')])
    assert 'class token, 4 heads' in capsys.readouterr().out
    picture = cv2.imread(out)  # input | mean | one panel per head
    panels = 2 + HEADS
    assert picture.shape == (TITLE_HEIGHT + IMG, panels * IMG + (panels - 1) * GAP, 3)
    heads = [picture[TITLE_HEIGHT:, i * (IMG + GAP):i * (IMG + GAP) + IMG]
             for i in range(2, panels)]
    assert len({h.tobytes() for h in heads}) == HEADS  # every head draws its own map


def test_a_backbone_without_class_token_gets_a_patch_map(tmp_path, capsys, image):
    from mmengine.config import Config
    from lomar_transfer.cli.visualize_attention import config_backbone
    from lomar_transfer.registry import MODELS
    config = REPO / 'configs/mae/mask-rcnn_vit-tiny-p8_synthetic-coco.py'
    backbone = MODELS.build(dict(Config.fromfile(config).model.backbone, init_cfg=None))
    backbone.init_weights()
    torch.save({'state_dict': backbone.state_dict()}, tmp_path / 'backbone.pth')
    model, _ = config_backbone(str(config), tmp_path / 'backbone.pth')
    assert not model.num_prefix_tokens
    main([str(config), str(tmp_path / 'backbone.pth'), '--images', str(image), '--out-dir',
          str(tmp_path / 'maps')])
    grid = model.grid_hw
    assert f'patch (row {grid[0] // 2}, column {grid[1] // 2})' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='outside the'):
        main([str(config), str(tmp_path / 'backbone.pth'), '--images', str(image), '--patch',
              '99', '0'])
