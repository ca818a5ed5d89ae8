# UperNet + auxiliary FCN head on a pretrained ViT-B/16 for ADE20K: mmseg's MAE protocol
# (mmseg configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py, "M", and its bases
# _base_/models/upernet_mae.py, "U"; BEiT's semantic segmentation code, which MAE used):
#   backbone (mmseg models/backbones/mae.py): class token kept in the sequence (mae.py:243-254);
#     learned absolute table at the 32x32 grid, started from the pretrained one resampled once
#     on load, bicubic, class slot kept (mae.py:209-235); BEiT's relative position bias in
#     every block, zero-initialised (mae.py:16-31,149; beit.py:78-111); LayerScale 1.0 (M:18);
#     drop path 0.1 (M:19); no final norm (mae.py:97); features of blocks 4/6/8/12 (M:20).
#   neck/heads: Feature2Pyramid (deconv x4, deconv x2, identity, max-pool; SyncBN), UperHead
#     with 768 channels, FCN auxiliary head on block 8 with loss weight 0.4 (U:29-54, M:21-24).
#   data: 512x512 crops of images rescaled to (2048, 512) x 0.5-2.0, flip, photometric
#     distortion; test at (2048, 512), sliding 512 windows with stride 341 (M:25).
#   optimisation: AdamW lr 1e-4, betas (0.9, 0.999), wd 0.05, layer decay 0.65 over 12 layers
#     (M:27-33); no decay for 1-D parameters and biases, decay for pos_embed, cls_token and the
#     bias tables (mmseg layer_decay_optimizer_constructor.py:134-135 compares the full
#     names against 'pos_embed'/'cls_token', so these are decayed); warm-up 1500 iterations
#     from 1e-6, then poly (power 1) to 0 at 160k (M:35-46); 16 images per iteration.
# Remaining differences, and why:
#   - AMP (fp16 autocast + dynamic loss scale), as the file name's "amp" says and BEiT's
#     segmentation code (which MAE used) trains. M:49 `fp16 = dict(loss_scale='dynamic')` is
#     read by neither mmengine nor, without the Fp16OptimizerHook it never sets, mmseg 0.x:
#     in which precision the published mmseg run trained is not known.
#   - mmseg's own BEiT config tunes BEiT apart (configs/beit/
#     beit-base_upernet_8xb2-160k_ade20k-640x640.py:5,16,18: 640 crops, lr 3e-5, layer decay
#     0.9); this protocol keeps one recipe for every source, so rows differ by weights only.
#   - MAE's leaves load the checkpoint through our converter instead of mmseg's offline
#     tools/model_converters/beit2mmseg.py: same tensors, same result (tests compare the
#     features with mmseg's own MAE backbone).
# LoMaR keeps its own relative position (its contextual RPE in every block) instead of BEiT's
# table; CAE keeps q/v biases and its pretrained LayerScale. Per-method leaves:
# configs/{lomar,mae,cae}/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py.
# CAE's own segmentation protocol:
# configs/*/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py.
_base_ = ['mmseg::mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py', '../safety.py']
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)
default_hooks = _base_.safe_default_hooks  # atomic checkpoints, exact resume, NaN stop

model = dict(
    pretrained=None,  # the method leaves set backbone.init_cfg
    backbone=dict(
        _delete_=True,  # replaces the task config's own backbone
        type='lomar_transfer.VisionTransformer',
        arch='base',
        patch_size=16,
        img_size=512,
        pretrain_img_size=224,
        with_cls_token=True,
        pos_embed='learned',
        learned_pos_grid='input',
        rel_pos_bias=True,
        layer_scale_init_value=1.0,
        drop_path_rate=0.1,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',
        final_norm=False))
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65, flat_decay_mult=0., bias_decay_mult=0.))
