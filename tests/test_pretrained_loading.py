"""Pretrained weights into the transfer ViT: converted, adapted, reported, or refused."""
import logging

import pytest
import torch

from lomar_transfer.checkpoint import load_pretrained_backbone
from lomar_transfer.models import CAEPretrainViT, VisionTransformer

TINY = dict(embed_dims=32, depth=2, num_heads=2, mlp_hidden_dims=64)


def save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def test_suite_checkpoint_into_dense_task_vit(tmp_path):
    """LoMaR pretraining weights (class token, 7x7 windows) into a windowed ViT without class
    token at another input size: everything but the class token loads and the report says so."""
    src = VisionTransformer(arch=TINY, img_size=56, patch_size=8, rel_pos=True, pos_embed=None)
    src.init_weights()
    for b in src.blocks:
        torch.nn.init.normal_(b.attn.rpe_k.lookup_table_weight)
    sd = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    sd['head.predictor.weight'] = torch.zeros(3, 3)
    path = save(tmp_path, 'lomar.pth', {'state_dict': sd, 'meta': {}})
    dst = VisionTransformer(arch=TINY, img_size=64, patch_size=8, rel_pos=True, pos_embed=None,
                            with_cls_token=False, window_size=4, global_attn_indices=(1, ))
    records = []
    logger = logging.getLogger('test_pretrained_report')
    logger.addHandler(logging.Handler())
    logger.handlers[-1].emit = records.append
    logger.setLevel(logging.INFO)
    load_pretrained_backbone(dst, path, logger=logger)
    torch.testing.assert_close(dst.blocks[1].attn.rpe_k.lookup_table_weight,
                               src.blocks[1].attn.rpe_k.lookup_table_weight)
    torch.testing.assert_close(dst.blocks[0].mlp.fc2.weight, src.blocks[0].mlp.fc2.weight)
    report = '\n'.join(r.getMessage() for r in records)
    assert f'loaded {len(dst.state_dict())}/{len(dst.state_dict())}' in report
    assert 'cls_token (this model has no class token)' in report
    assert "dropped 1 non-backbone keys, e.g. ['head.predictor.weight']" in report


def test_timm_style_checkpoint_pos_embed_resampled(tmp_path):
    src = VisionTransformer(arch=TINY, img_size=32, patch_size=8, pos_embed='learned')
    src.init_weights()
    path = save(tmp_path, 'vit.pth', {'model': dict(src.state_dict(),
                                                    **{'head.weight': torch.zeros(10, 32)})})
    dst = VisionTransformer(arch=TINY, img_size=48, patch_size=8, pos_embed='learned',
                            init_cfg=dict(type='Pretrained', checkpoint=path))
    dst.init_weights()
    assert dst.pos_embed.shape == (1, 1 + 36, 32)
    torch.testing.assert_close(dst.pos_embed[:, 0], src.pos_embed[:, 0])
    torch.testing.assert_close(dst.cls_token, src.cls_token)


def test_refuses_a_checkpoint_that_does_not_match(tmp_path):
    path = save(tmp_path, 'resnet.pth', {'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7),
                                                        'blocks.0.conv.weight': torch.zeros(1)}})
    vit = VisionTransformer(arch=TINY, img_size=32, patch_size=8, pretrained=path)
    with pytest.raises(RuntimeError, match='refusing to load'):
        vit.init_weights()


def test_wrong_architecture_and_broken_files_are_named(tmp_path):
    small = VisionTransformer(arch=dict(TINY, embed_dims=64, num_heads=4), img_size=32,
                              patch_size=8)
    path = save(tmp_path, 'wider.pth', small.state_dict())
    with pytest.raises(RuntimeError, match='another architecture'):
        VisionTransformer(arch=TINY, img_size=32, patch_size=8, pretrained=path).init_weights()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(path, 'rb').read()[:1000])
    with pytest.raises(RuntimeError, match='truncated'):
        VisionTransformer(arch=TINY, img_size=32, patch_size=8,
                          pretrained=str(truncated)).init_weights()
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        VisionTransformer(arch=TINY, pretrained=str(tmp_path / 'nope.pth')).init_weights()


def test_cae_position_buffer_survives_init():
    vit = CAEPretrainViT(arch=TINY, img_size=32, patch_size=8)
    vit.init_weights()
    torch.testing.assert_close(vit.pos_embed, vit.abs_pos_embed((4, 4)))
    assert 'pos_embed' not in vit.state_dict()
