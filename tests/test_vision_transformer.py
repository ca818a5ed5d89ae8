import numpy as np
import pytest
import torch

from lomar_transfer.models.backbones import VisionTransformer
from lomar_transfer.models.backbones.vision_transformer import (resample_abs_pos_embed,
                                                                sincos_pos_embed_2d)

TINY = dict(embed_dims=32, depth=3, num_heads=2, mlp_hidden_dims=64)


@pytest.mark.parametrize('out_type,shape', [('featmap', (2, 32, 3, 5)), ('cls_token', (2, 32)),
                                            ('avg_featmap', (2, 32)), ('raw', (2, 16, 32))])
def test_output_types(out_type, shape):
    vit = VisionTransformer(arch=TINY, img_size=32, patch_size=8, out_type=out_type,
                            out_indices=(0, -1))
    outs = vit(torch.randn(2, 3, 24, 40))
    assert len(outs) == 2 and all(o.shape == shape for o in outs)


def test_input_padded_to_patch_multiple():
    vit = VisionTransformer(arch=TINY, patch_size=8, img_size=32).eval()
    x = torch.randn(1, 3, 20, 30)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 4))
    torch.testing.assert_close(vit(x)[0], vit(padded)[0])
    assert vit(x)[0].shape[-2:] == (3, 4)


def mae_official_sincos(grid_h, grid_w, dims):
    """Official MAE's get_2d_sincos_pos_embed (numpy), generalised to h != w."""
    grid = np.meshgrid(np.arange(grid_w, dtype=np.float64), np.arange(grid_h, dtype=np.float64))

    def emb_1d(d, pos):
        omega = 1. / 10000**(np.arange(d // 2, dtype=np.float64) / (d / 2.))
        out = np.einsum('m,d->md', pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([emb_1d(dims // 2, grid[0]), emb_1d(dims // 2, grid[1])], axis=1)


def test_sincos_matches_official_mae():
    ours = sincos_pos_embed_2d((4, 6), 64)
    torch.testing.assert_close(ours, torch.from_numpy(mae_official_sincos(4, 6, 64)).float())
    # mmpretrain's builder swaps the two halves' axes (row first); same values, transposed grid
    from mmpretrain.models.utils import build_2d_sincos_position_embedding
    ref = build_2d_sincos_position_embedding(5, 64)[0].reshape(5, 5, 64)
    torch.testing.assert_close(sincos_pos_embed_2d((5, 5), 64).reshape(5, 5, 64),
                               ref.transpose(0, 1))


def test_learned_pos_embed_resampling():
    pe = torch.randn(1, 1 + 16, 8)
    assert resample_abs_pos_embed(pe, (4, 4)) is pe
    out = resample_abs_pos_embed(pe, (6, 2))
    assert out.shape == (1, 13, 8)
    torch.testing.assert_close(out[:, :1], pe[:, :1])  # class token untouched
    vit = VisionTransformer(arch=TINY, img_size=32, patch_size=8, pos_embed='learned')
    assert vit(torch.randn(1, 3, 48, 16))[0].shape == (1, 32, 6, 2)


def test_qv_bias_has_no_key_bias():
    vit = VisionTransformer(arch=TINY, img_size=32, patch_size=8, qkv_bias='qv')
    names = {n for n, _ in vit.named_parameters()}
    assert 'layers.0.attn.q_bias' in names and 'layers.0.attn.v_bias' in names
    assert 'layers.0.attn.qkv.bias' not in names
    attn = vit.layers[0].attn
    with torch.no_grad():
        attn.q_bias.fill_(1.)
        attn.v_bias.fill_(2.)
    x = torch.randn(1, 5, 32)
    # k has no bias: adding a constant to every k leaves softmax unchanged only for q_bias-free
    # queries, so check the projection directly
    qkv = torch.nn.functional.linear(x, attn.qkv.weight)
    q_ref, k_ref, v_ref = qkv.split(32, dim=-1)
    b = torch.cat([attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias])
    q, k, v = torch.nn.functional.linear(x, attn.qkv.weight, b).split(32, dim=-1)
    torch.testing.assert_close(k, k_ref)
    torch.testing.assert_close(q, q_ref + 1)
    torch.testing.assert_close(v, v_ref + 2)


def test_unknown_arch_names_choices():
    with pytest.raises(KeyError, match='tiny'):
        VisionTransformer(arch='huge-ish')


def test_relative_position_encoding_depends_only_on_offsets():
    from lomar_transfer.models.backbones.relative_position import product_bucket_ids
    ids = product_bucket_ids(9, 11, 1, 1.9, 3.8, 15.2)
    assert ids.shape == (100, 100) and (ids[0] == 49).all() and (ids[:, 0] == 49).all()
    grid = ids[1:, 1:].view(9, 11, 9, 11)
    # same offset, same bucket: (0,0)->(2,3) and (5,6)->(7,9)
    assert grid[0, 0, 2, 3] == grid[5, 6, 7, 9] and grid[4, 4, 4, 4] == 24
    assert ids.max() == 49  # 7 x 7 product buckets + the class token's


def test_relative_position_weights_work_at_any_grid_size():
    vit = VisionTransformer(arch=TINY, img_size=32, patch_size=8, rel_pos=True, pos_embed=None)
    for block in vit.layers:
        torch.nn.init.normal_(block.attn.rpe_k.lookup_table_weight)
    shapes = [vit(torch.randn(1, 3, s, s))[0].shape for s in (56, 160)]
    assert shapes == [(1, 32, 7, 7), (1, 32, 20, 20)]
    # the encoding matters: zeroing the tables changes the output
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        before = vit(x)[0]
        for block in vit.layers:
            block.attn.rpe_k.lookup_table_weight.zero_()
        assert not torch.allclose(before, vit(x)[0])


def test_windowed_attention():
    torch.manual_seed(0)
    kw = dict(arch=TINY, img_size=32, patch_size=8, with_cls_token=False, rel_pos=True)
    full = VisionTransformer(**kw).eval()
    win = VisionTransformer(window_size=4, global_attn_indices=(-1, ), **kw).eval()
    win.load_state_dict(full.state_dict())
    assert [b.window_size for b in win.layers] == [4, 4, 0]
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 32)  # 4x4 grid = one window: windowed == global
        torch.testing.assert_close(win(x)[0], full(x)[0])
        x = torch.randn(1, 3, 48, 40)  # 6x5 grid, padded to 8x8 windows: differs, same shape
        assert win(x)[0].shape == full(x)[0].shape == (1, 32, 6, 5)
        assert not torch.allclose(win(x)[0], full(x)[0])
    with pytest.raises(ValueError, match='with_cls_token=False'):
        VisionTransformer(arch=TINY, window_size=4)


SMALL_VIT = dict(arch=dict(embed_dims=32, depth=4, num_heads=2, mlp_hidden_dims=64), patch_size=8)


def test_frozen_stages_freeze_embeddings_and_first_blocks():
    vit = VisionTransformer(**SMALL_VIT, frozen_stages=2, drop_path_rate=0.1)
    vit.train()
    trainable = {n.split('.')[0] + ('.' + n.split('.')[1] if n.startswith('layers') else '')
                 for n, p in vit.named_parameters() if p.requires_grad}
    assert trainable == {'layers.2', 'layers.3', 'norm'}
    assert not vit.layers[1].training and vit.layers[2].training  # frozen blocks stay in eval
    probe = VisionTransformer(**SMALL_VIT, frozen_stages=4)  # linear probing: nothing trains
    assert not any(p.requires_grad for p in probe.parameters())
    with pytest.raises(ValueError, match='exceeds'):
        VisionTransformer(**SMALL_VIT, frozen_stages=5)


def test_out_scales_give_a_pyramid_for_stock_fpn_configs():
    vit = VisionTransformer(**SMALL_VIT, with_cls_token=False, out_indices=(0, 1, 2, 3),
                            out_scales=(2, 1, 0.5, 0.25))
    outs = vit(torch.randn(2, 3, 64, 96))  # stride-8 ViT -> strides 4, 8, 16, 32
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    with pytest.raises(ValueError, match='featmap'):
        VisionTransformer(**SMALL_VIT, out_type='avg_featmap', out_scales=(2, 1))


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = VisionTransformer(**SMALL_VIT, rel_pos=True, pos_embed=None)
    ckpt = VisionTransformer(**SMALL_VIT, rel_pos=True, pos_embed=None, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for m in (plain, ckpt):
        m.train()
        m(x)[0].square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and grads[0].abs().sum() > 0
