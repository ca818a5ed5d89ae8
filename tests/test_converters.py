"""Weight conversion: converted checkpoints give the same features as the source model."""
import re

import pytest
import torch

from lomar_transfer.converters import convert_to_lomar_vit, detect_source
from lomar_transfer.models.backbones import VisionTransformer

TOL = dict(atol=1e-4, rtol=0)


def ours(**kwargs):
    cfg = dict(arch='base', img_size=224, patch_size=16, pos_embed='learned', out_type='raw')
    cfg.update(kwargs)
    return VisionTransformer(**cfg).eval()


def timm_names(state_dict):
    """Our keys in timm's (and the official releases') naming: ``layers.N.`` -> ``blocks.N.``."""
    return {re.sub(r'^layers\.', 'blocks.', k): v for k, v in state_dict.items()}


def load(model, state_dict, source='auto'):
    converted, dropped = convert_to_lomar_vit(state_dict, source)
    model.load_state_dict(converted, strict=True)  # no missing, no unexpected keys
    return dropped


@torch.no_grad()
def test_timm_vit_base_same_features():
    import timm
    torch.manual_seed(0)
    ref = timm.create_model('vit_base_patch16_224', pretrained=False).eval()
    sd = ref.state_dict()
    assert detect_source(sd) == 'timm'
    model = ours()
    dropped = load(model, sd)
    assert sorted(dropped) == ['head.bias', 'head.weight']
    x = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(model(x)[0], ref.forward_features(x), **TOL)


@pytest.mark.parametrize('mm_type', ['VisionTransformer', 'MAEViT'])
@torch.no_grad()
def test_mmpretrain_vit_same_features_at_224_and_resampled(mm_type):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg = dict(type=mm_type, arch='b', patch_size=16, out_type='raw')
    if mm_type == 'VisionTransformer':
        cfg.update(drop_path_rate=0.)
    ref = MODELS.build(cfg)
    ref.init_weights()
    ref.eval()
    # a pretraining algorithm checkpoint: backbone.* plus neck/head keys
    sd = {f'backbone.{k}': v for k, v in ref.state_dict().items()}
    sd['neck.decoder_pred.weight'] = torch.zeros(3)
    assert detect_source({'state_dict': sd}) == 'mmpretrain'
    model = ours()
    dropped = load(model, {'state_dict': sd})
    assert dropped == ['neck.decoder_pred.weight']
    forward = (lambda x: ref(x, mask=None)) if mm_type == 'MAEViT' else ref
    for size in (224, 320):  # 320: both resample the 14x14 position embedding to 20x20
        x = torch.randn(2, 3, size, size)
        torch.testing.assert_close(model(x)[0], forward(x)[0], **TOL)


@torch.no_grad()
def test_mmpretrain_cae_backbone_keys_all_load():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    ref = MODELS.build(dict(type='CAEPretrainViT', arch='b', patch_size=16,
                            layer_scale_init_value=0.1, bias='qv_bias'))
    model = ours(qkv_bias='qv', layer_scale_init_value=0.1)
    assert load(model, ref.state_dict()) == []


def test_official_cae_and_lomar_naming():
    # official CAE: encoder.* with gamma_1/gamma_2 and q/v biases
    src = ours(qkv_bias='qv', layer_scale_init_value=0.1, arch=dict(depth=2))
    sd = {}
    for k, v in timm_names(src.state_dict()).items():
        k = k.replace('.ls1.gamma', '.gamma_1').replace('.ls2.gamma', '.gamma_2')
        sd[f'encoder.{k}'] = v + 1
    sd['teacher.blocks.0.norm1.weight'] = torch.zeros(1)
    assert detect_source({'model': sd}) == 'cae'
    dst = ours(qkv_bias='qv', layer_scale_init_value=0.1, arch=dict(depth=2))
    assert load(dst, {'model': sd}) == ['teacher.blocks.0.norm1.weight']
    torch.testing.assert_close(dst.layers[1].ls2.gamma, src.layers[1].ls2.gamma + 1)
    # official LoMaR: timm naming + iRPE tables, pretraining head dropped; the mask token is an
    # encoder input of LoMaR (kept for LoMaRViT, see test_official_equivalence.py)
    lomar = ours(rel_pos=True, pos_embed=None, arch=dict(depth=2))
    sd = dict(timm_names(lomar.state_dict()), mask_token=torch.zeros(1, 1, 768),
              **{'encoder_pred.weight': torch.zeros(768, 768)})
    assert detect_source({'model': sd}) == 'timm'
    converted, dropped = convert_to_lomar_vit({'model': sd})
    assert dropped == ['encoder_pred.weight'] and 'mask_token' in converted
    converted.pop('mask_token')
    ours(rel_pos=True, pos_embed=None, arch=dict(depth=2)).load_state_dict(converted)


def test_not_a_vit_checkpoint_is_named():
    with pytest.raises(ValueError, match='is this a ViT checkpoint'):
        detect_source({'conv1.weight': torch.zeros(1)})


def test_our_naming_is_recognised_in_both_formats():
    """Ours: ``layers.N.`` with timm's names inside (format 3), whole-model or backbone-only;
    whole-model checkpoints written before format 3 (``backbone.blocks.N.``) are ours too."""
    vit = ours(arch=dict(depth=2))
    sd = vit.state_dict()
    assert 'layers.1.mlp.fc1.weight' in sd and not any(k.startswith('blocks.') for k in sd)
    whole = {f'backbone.{k}': v for k, v in sd.items()}
    old = {f'backbone.{k}': v for k, v in timm_names(sd).items()}
    for ckpt in (sd, {'state_dict': whole}, {'state_dict': old}):
        assert detect_source(ckpt) == 'lomar_transfer'
        dst = ours(arch=dict(depth=2))
        assert load(dst, ckpt) == []
        assert all(torch.equal(v, sd[k]) for k, v in dst.state_dict().items())
    # mmpretrain's own 'layers.N.ln1' stays mmpretrain's
    assert detect_source({'backbone.layers.0.ln1.weight': torch.zeros(1)}) == 'mmpretrain'
