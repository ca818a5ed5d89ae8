"""Our models compute what the official LoMaR, MAE and CAE code computes, given the same weights
(every parameter non-zero: relative position tables, layer scales, biases, tokens) and the same
input, in the transfer view, the pretraining view and the fine-tune feature. The official
computations are re-created in ``official_models.py``; checkpoints are written in each official
release format (``{'model': state_dict}`` with the official names) and go through
``init_cfg=Pretrained`` and ``tools/model_converters/to_lomar_vit.py`` alike."""
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

from conftest import REPO, format2_names, weights
from lomar_transfer.models import CAEPretrainViT, LoMaRViT, MAEPretrainViT, VisionTransformer
from lomar_transfer.registry import MODELS
from official_models import OfficialViT, perturb_

ARCH = dict(embed_dims=64, depth=2, num_heads=4, mlp_hidden_dims=256)
ATOL = 1e-5
# our ViT options that make each official model
LOMAR = dict(pos_embed=None, rel_pos=True)
CAE = dict(qkv_bias='qv', layer_scale_init_value=0.1, pos_embed='sincos', sincos_order='cae')
FINETUNE = dict(out_type='avg_featmap', final_norm=False)


def official_checkpoint(tmp_path, name, model, extra=()):
    """An official release file: {'model': state_dict} (+ non-backbone keys of the release)."""
    sd = OrderedDict(model.state_dict())
    sd.update(extra)
    path = tmp_path / f'{name}.pth'
    torch.save({'model': sd, 'epoch': 1599}, path)
    return path


def converted(tmp_path, src):
    dst = tmp_path / (src.stem + '_converted.pth')
    out = subprocess.run([sys.executable, str(REPO / 'tools/model_converters/to_lomar_vit.py'),
                          str(src), str(dst)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return dst


def ours(cls=VisionTransformer, **kw):
    model = cls(arch=ARCH, patch_size=16, img_size=112, **kw)
    model.init_weights()
    return model.eval()


def both_loaders(tmp_path, src, cls=VisionTransformer, **kw):
    """The model loaded through ``init_cfg=Pretrained`` and through the converter tool's output."""
    return [ours(cls, init_cfg=weights(path), **kw) for path in (src, converted(tmp_path, src))]


@pytest.mark.parametrize('size', [112, 224])
@pytest.mark.slow
def test_lomar_transfer_view(tmp_path, size):
    official = perturb_(OfficialViT('lomar')).eval()
    assert official.blocks[0].attn.rpe_k.lookup_table_weight.abs().min() > 0
    src = official_checkpoint(tmp_path, 'lomar', official)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = official.forward_features(x)
        for model in both_loaders(tmp_path, src, out_type='raw', **LOMAR):
            torch.testing.assert_close(model(x)[0], expected, atol=ATOL, rtol=0)


def test_lomar_pretraining_predictions_and_loss(tmp_path):
    """Same windows (the official sampler's draw) and masks: same predictions, mask, loss."""
    torch.manual_seed(0)
    official = perturb_(OfficialViT('lomar', img=224)).eval()
    src = official_checkpoint(tmp_path, 'lomar', official)
    model = MODELS.build(dict(
        type='lomar_transfer.LoMaR',
        data_preprocessor=dict(type='mmpretrain.SelfSupDataPreprocessor', mean=[0, 0, 0],
                               std=[1, 1, 1]),
        backbone=dict(type='lomar_transfer.LoMaRViT', arch=ARCH, patch_size=16, img_size=224,
                      window_sampling='official', init_cfg=weights(src)),
        head=dict(type='lomar_transfer.LoMaRHead', in_channels=64, patch_size=16, norm_pix=True,
                  loss=dict(type='mmpretrain.PixelReconstructionLoss', criterion='L2'))))
    model.init_weights()
    model.head.predictor.load_state_dict(official.encoder_pred.state_dict())
    # float64: 768-wide predictions of size ~10 differ by ~1e-5 in float32 with the thread count
    model.double().eval()
    official.double()
    x = torch.randn(3, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        latent, mask, patch_ids = model.backbone(x, mask=True)
        pred = model.head(latent)
        loss = model.head.loss(pred, x, mask, patch_ids)
        # the official inputs: window offsets of sequences 0..3, masked grid ids per sequence
        grid_ids = patch_ids % 196
        tops, lefts = grid_ids[:4, 0] // 14, grid_ids[:4, 0] % 14
        masked = grid_ids[mask.bool()].view(3, 4, -1)
        ref_loss, ref_pred, ref_mask = official.lomar_pretrain(x, tops, lefts, masked)
    assert torch.equal(ref_mask, mask.bool())
    assert (patch_ids // 196 == (torch.arange(12) % 3)[:, None]).all()  # image s % B, official
    torch.testing.assert_close(pred, ref_pred, atol=ATOL, rtol=0)
    torch.testing.assert_close(loss, ref_loss, atol=ATOL, rtol=0)

    # training (gradients on): the attention takes its fused baddbmm path (the relative term
    # needs a gradient); same loss and same gradients for the image and every RPE table
    x.requires_grad_(True)
    latent, mask, patch_ids = model.backbone(x, mask=True)
    loss = model.head.loss(model.head(latent), x, mask, patch_ids)
    grid_ids = patch_ids % 196
    masked = grid_ids[mask.bool()].view(3, 4, -1)
    ref_loss, _, _ = official.lomar_pretrain(x, grid_ids[:4, 0] // 14, grid_ids[:4, 0] % 14,
                                             masked)
    ours_grads = torch.autograd.grad(loss, [x] + [b.attn.rpe_k.lookup_table_weight
                                                  for b in model.backbone.layers])
    ref_grads = torch.autograd.grad(ref_loss, [x] + [b.attn.rpe_k.lookup_table_weight
                                                     for b in official.blocks])
    torch.testing.assert_close(loss, ref_loss, atol=ATOL, rtol=0)
    for ours_grad, ref_grad in zip(ours_grads, ref_grads):
        assert ref_grad.abs().max() > 0
        torch.testing.assert_close(ours_grad, ref_grad, atol=1e-9, rtol=1e-7)


@pytest.mark.slow
def test_mae_pretraining_encoder(tmp_path):
    official = perturb_(OfficialViT('mae')).eval()
    decoder = {'mask_token': torch.randn(1, 1, 32), 'decoder_embed.weight': torch.randn(32, 64),
               'decoder_pred.weight': torch.randn(768, 32)}
    src = official_checkpoint(tmp_path, 'mae', official, decoder)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.manual_seed(3)
        expected = official.mae_encoder(x, 0.75)
        for model in both_loaders(tmp_path, src, MAEPretrainViT, mask_ratio=0.75):
            torch.manual_seed(3)
            for got, ref in zip(model(x, mask=True), expected):
                torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)


@pytest.mark.slow
def test_cae_pretraining_encoder(tmp_path):
    """An official CAE pretraining checkpoint (encoder./teacher. prefixes, gamma_1/2, q/v bias,
    the sin-cos table in CAE's order under encoder.pos_embed)."""
    official = perturb_(OfficialViT('cae')).eval()
    sd = {f'encoder.{k}': v for k, v in official.state_dict().items()}
    sd.update({f'teacher.{k}': v for k, v in official.state_dict().items()})
    sd['pretext_neck.regressor_blocks.0.norm1_q.weight'] = torch.ones(64)
    src = tmp_path / 'cae.pth'
    torch.save({'model': sd}, src)
    x = torch.randn(2, 3, 112, 112)
    mask = torch.zeros(2, 49, dtype=torch.bool)
    mask[0, torch.randperm(49)[:20]] = mask[1, torch.randperm(49)[:20]] = True
    with torch.no_grad():
        expected = official.cae_encoder(x, mask)
        for model in both_loaders(tmp_path, src, CAEPretrainViT):
            torch.testing.assert_close(model(x, mask), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize('method', ['lomar', 'mae', 'cae'])
@pytest.mark.slow
def test_finetune_feature(tmp_path, method):
    """The pooled feature before the classifier: official fine-tune models (MAE models_vit.py and
    LoMaR models_vit_rp.py with global_pool; CAE modeling_finetune.py with mean pooling and a
    relative position bias per block)."""
    official = OfficialViT(method, global_pool=True, rel_pos_bias=method == 'cae')
    if method == 'mae':
        official.pos_embed.requires_grad = True  # MAE fine-tunes the position embedding
    perturb_(official).eval()
    head = {'head.weight': torch.randn(10, 64), 'head.bias': torch.randn(10)}
    src = official_checkpoint(tmp_path, method, official, head)
    opts = dict(lomar=LOMAR, mae=dict(pos_embed='learned'), cae=dict(CAE, rel_pos_bias=True))
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        expected = official.forward_features(x)
        for model in both_loaders(tmp_path, src, **opts[method], **FINETUNE):
            torch.testing.assert_close(model(x)[0], expected, atol=ATOL, rtol=0)


def test_official_cae_table_is_checked_not_dropped(tmp_path):
    """The checkpoint's fixed table must be the model's: in MAE's order the CAE weights would
    compute something else, so loading refuses and names the fix."""
    official = OfficialViT('cae')
    src = tmp_path / 'cae.pth'
    torch.save({'model': {f'encoder.{k}': v for k, v in official.state_dict().items()}}, src)
    with pytest.raises(RuntimeError, match="sincos_order='cae'"):
        ours(**dict(CAE, sincos_order='mae'), init_cfg=weights(src))
    # a fine-tuned (learned) table into a fixed-table model
    mae = OfficialViT('mae')
    mae.pos_embed.requires_grad = True
    perturb_(mae)
    src = official_checkpoint(tmp_path, 'mae_ft', mae)
    with pytest.raises(RuntimeError, match="pos_embed='learned'"):
        ours(init_cfg=weights(src))


def our_checkpoint(tmp_path, algorithm_backbone, version):
    """A training checkpoint as mmengine writes it, with the backbone modules' format version
    (and, before format 3, the block list's name then: ``blocks``)."""
    module = torch.nn.Module()
    module.backbone = algorithm_backbone
    sd = module.state_dict()
    for key in sd._metadata:
        if key == 'backbone' or key.endswith('rpe_k'):
            sd._metadata[key]['version'] = version
    if version < 3:
        sd = format2_names(sd)
    path = tmp_path / f'ours_v{version}.pth'
    torch.save({'state_dict': sd, 'meta': {}}, path)
    return path


@pytest.mark.slow
def test_lomar_checkpoint_of_format_1_is_converted(tmp_path):
    """Format 1 (before the fix) used scaled queries: q*s . T. Loaded now, the tables are
    rescaled and the model computes what it was trained as (official math with s*T)."""
    trained = perturb_(LoMaRViT(arch=ARCH, patch_size=16, img_size=112))
    path = our_checkpoint(tmp_path, trained, version=1)
    official = OfficialViT('lomar')
    official.load_state_dict(  # official names: blocks.N.
        {k: v for k, v in format2_names(trained.state_dict(), prefix='').items()
         if k in official.state_dict()}, strict=False)
    with torch.no_grad():
        for blk in official.blocks:
            blk.attn.rpe_k.lookup_table_weight.mul_(16**-0.5)
        official.norm.load_state_dict(trained.norm.state_dict())
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        expected = official.forward_features(x)
        for path_ in (path, converted(tmp_path, path)):
            model = ours(init_cfg=weights(path_), out_type='raw', **LOMAR)
            torch.testing.assert_close(model(x)[0], expected, atol=ATOL, rtol=0)
        # format-2 tables (unscaled queries, as this version writes them) are taken as they are
        model = ours(init_cfg=weights(our_checkpoint(tmp_path, trained, 2)), out_type='raw',
                     **LOMAR)
        assert not torch.allclose(model(x)[0], expected, atol=1e-3)


def test_cae_checkpoint_of_format_1_is_refused(tmp_path):
    old = CAEPretrainViT(arch=ARCH, patch_size=16, img_size=112)
    path = our_checkpoint(tmp_path, old, version=1)
    with pytest.raises(RuntimeError, match='before format 2'):
        ours(CAEPretrainViT, init_cfg=weights(path))
    # used as it was trained: the MAE-order table
    ours(CAEPretrainViT, sincos_order='mae', init_cfg=weights(path))
    # format 2 loads
    ours(CAEPretrainViT, init_cfg=weights(our_checkpoint(tmp_path, old, 2)))


def test_cae_finetuning_starts_fc_norm_from_the_pretrained_norm(tmp_path):
    """CAE's loading rule (run_class_finetuning.py:372-377): norm -> fc_norm; MAE's and LoMaR's
    fine-tuning start fc_norm anew."""
    official = perturb_(OfficialViT('cae'))
    src = tmp_path / 'cae.pth'
    torch.save({'model': {f'encoder.{k}': v for k, v in official.state_dict().items()}}, src)
    cae = ours(init_cfg=weights(src), fc_norm_from_norm=True, rel_pos_bias=True, **CAE, **FINETUNE)
    torch.testing.assert_close(cae.fc_norm.weight, official.norm.weight)
    torch.testing.assert_close(cae.fc_norm.bias, official.norm.bias)
    mae = ours(init_cfg=weights(src), **CAE, **FINETUNE)
    assert torch.equal(mae.fc_norm.weight, torch.ones(64))
