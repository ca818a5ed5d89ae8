import numpy as np
import pytest
import torch

from lomar_transfer.models.backbones import VisionTransformer
from lomar_transfer.models.backbones.pos_embed import resample_abs_pos_embed, sincos_pos_embed_2d

TINY = dict(embed_dims=32, depth=3, num_heads=2, mlp_hidden_dims=64)


def randomize_(module, seed=0):
    """Every parameter random and non-zero (tokens, biases, norms), so that no term vanishes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + 0.1)
    return module


@pytest.mark.parametrize('out_type,shape', [('featmap', (2, 32, 3, 5)), ('cls_token', (2, 32)),
                                            ('avg_featmap', (2, 32)), ('raw', (2, 16, 32))])
@pytest.mark.parametrize('final_norm', [True, False])
def test_output_types(out_type, shape, final_norm):
    """Every output type is a view of the raw token sequence of the same block: the final norm
    (``norm``) on the last block's tokens only; ``avg_featmap`` the mean of the patch tokens, with
    ``fc_norm`` on the mean instead when ``final_norm=False``; ``cls_token`` the first token."""
    kw = dict(arch=TINY, img_size=32, patch_size=8, out_indices=(0, -1), final_norm=final_norm)
    vit = randomize_(VisionTransformer(out_type=out_type, **kw)).eval()
    raw_vit = VisionTransformer(out_type='raw', **kw).eval()
    raw_vit.load_state_dict(vit.state_dict(), strict=False)  # fc_norm: only avg_featmap has it
    bare = VisionTransformer(out_type='raw', **dict(kw, final_norm=False)).eval()
    bare.load_state_dict(vit.state_dict(), strict=False)  # no final norm at all
    x = torch.randn(2, 3, 24, 40)
    with torch.no_grad():
        outs, raw, unnormed = vit(x), raw_vit(x), bare(x)
    assert len(outs) == 2 and all(o.shape == shape for o in outs)
    # the final norm: on the last block's output only, never on an intermediate one
    torch.testing.assert_close(raw[0], unnormed[0], rtol=0, atol=0)
    if final_norm:
        torch.testing.assert_close(raw[1], vit.norm(unnormed[1]), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(raw[1], unnormed[1])
    else:
        torch.testing.assert_close(raw[1], unnormed[1], rtol=0, atol=0)
    for out, tokens in zip(outs, raw):
        patches = tokens[:, 1:]
        if out_type == 'raw':
            want = tokens
        elif out_type == 'cls_token':
            want = tokens[:, 0]
        elif out_type == 'avg_featmap':
            want = patches.mean(dim=1)
            if not final_norm:  # the official fine-tune feature: norm of the mean
                want = torch.nn.functional.layer_norm(want, (32, ), vit.fc_norm.weight,
                                                      vit.fc_norm.bias, eps=1e-6)
        else:  # featmap: the patch tokens on their 3x5 grid, row-major
            want = patches.reshape(2, 3, 5, 32).permute(0, 3, 1, 2)
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)


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
    """qkv_bias='qv' (BEiT/CAE): the real Attention.forward equals attention computed by hand
    with the bias [q_bias, 0, v_bias], all weights and biases random and non-zero."""
    vit = VisionTransformer(arch=TINY, img_size=32, patch_size=8, qkv_bias='qv')
    names = {n for n, _ in vit.named_parameters()}
    assert 'layers.0.attn.q_bias' in names and 'layers.0.attn.v_bias' in names
    assert 'layers.0.attn.qkv.bias' not in names
    attn = randomize_(vit.layers[0].attn).double().eval()
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    with torch.no_grad():
        out = attn(x)
        heads, dims = 2, 16
        bias = torch.cat([attn.q_bias, torch.zeros(32, dtype=x.dtype), attn.v_bias])
        qkv = x @ attn.qkv.weight.T + bias
        q, k, v = (t.reshape(2, 5, heads, dims).transpose(1, 2) for t in qkv.split(32, dim=-1))
        weights = torch.softmax(q @ k.transpose(-2, -1) * dims**-0.5, dim=-1)
        ref = (weights @ v).transpose(1, 2).reshape(2, 5, 32) @ attn.proj.weight.T + attn.proj.bias
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    # (a bias on k would not show in the output: q.(k + b) shifts every logit of a query by the
    # same q.b, which softmax ignores; the parameter names above are what rule it out)


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


def test_the_pyramid_is_a_neck():
    """One way to build the feature pyramid: the neck (ViTFeaturePyramid before the FPN, as
    mmdet's ViTDet); the backbone option that did the same is refused, naming the neck to write."""
    from lomar_transfer.models import ViTFeaturePyramid
    vit = VisionTransformer(**SMALL_VIT, with_cls_token=False, out_indices=(0, 1, 2, 3))
    neck = ViTFeaturePyramid(SMALL_VIT['arch']['embed_dims'], scales=(2, 1, 0.5, 0.25))
    outs = neck(vit(torch.randn(2, 3, 64, 96)))  # stride-8 ViT -> strides 4, 8, 16, 32
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    with pytest.raises(ValueError, match=r"neck=\[dict\(type='lomar_transfer.ViTFeaturePyramid'"):
        VisionTransformer(**SMALL_VIT, with_cls_token=False, out_scales=(2, 1, 0.5, 0.25))


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


@pytest.mark.parametrize('mask_batch', [1, 2])  # BEiT's (1, heads, N, N) table; LoMaR's per item
def test_attention_with_a_learned_term_is_sdpa(mask_batch):
    """While training, a relative position term that needs a gradient takes one baddbmm instead
    of SDPA's math fallback: same output and same gradients for q, k, v and the term."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    from lomar_transfer.models.backbones.vision_transformer import attention
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    term = torch.randn(mask_batch, 3, 5, 5, generator=g, dtype=torch.float64,
                       requires_grad=True)
    weight = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64)
    results = []
    for fn in (lambda: attention(q, k, v, term, 4**-0.5), lambda: sdpa(q, k, v, attn_mask=term)):
        out = fn()
        results.append([out] + list(torch.autograd.grad((out * weight).sum(), [q, k, v, term])))
    for ours, ref in zip(*results):
        assert ref.abs().max() > 0
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # inference (no gradient): the SDPA kernel itself
        torch.testing.assert_close(attention(q, k, v, term, 4**-0.5), results[1][0])
