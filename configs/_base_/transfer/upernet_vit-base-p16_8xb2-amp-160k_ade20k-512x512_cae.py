# UperNet on a pretrained ViT-B/16 for ADE20K: CAE's own segmentation protocol, the recipe
# behind CAE's published mIoU (300 ep 48.1 with lr 3e-4, 800 ep 49.7 with 2e-4, 1600 ep 50.3
# with 1e-4; lxtGH/CAE downstream_tasks/semantic_segmentation/README.md:59-64). Official
# configs_local/cae/upernet/upernet_cae_base_12_512_slide_160k_ade20k_pt_3e-4.py ("cfg"),
# _base_/models/upernet_cae.py, backbone/cae.py ("cae"):
#   backbone: class token in the sequence; the pretrained sin-cos table resampled bicubic to the
#     32x32 grid on load and frozen (cfg:29, cae.py:332-333, mmcv_custom/checkpoint.py:488-509,
#     layer_decay_optimizer_constructor.py:41-42); BEiT's relative position bias per block,
#     zero-initialised (cfg:30, cae.py:84-110); q/v biases; LayerScale 0.1 (cfg:31); drop path
#     0.1 (cfg:32); no final norm; blocks 4/6/8/12 (cfg:33); fpn1-4 with SyncBN (cae.py:360-374).
#   heads and data: as mmseg's (UperHead 768 channels, FCN auxiliary x0.4; 512 crops; sliding
#     512/341 test) (cfg:35-44).
#   optimisation: AdamW lr 3e-4 (300-epoch pretraining; leaves of 1600-epoch models use 1e-4,
#     CAE's value for 1600 epochs), wd 0.05, layer decay 0.65 (cfg:47-49), no decay for 1-D
#     parameters and biases; poly decay (power 1, to 0) over all 160k iterations, multiplied by
#     a linear warm-up from 1e-6 over the first 1500 (cfg:51-55, mmcv 1.x PolyLrUpdaterHook:
#     the warm-up scales the poly value, it does not precede it); 16 images per iteration.
# Remaining differences, and why:
#   - mmengine AMP instead of apex O1 (apex is not installable here; same fp16 arithmetic).
#   - CAE's code overwrites its own sin-cos table with noise before loading the checkpoint's
#     (cae.py:354-355); the loaded table is what counts, and it is what we load.
# Per-method leaves:
# configs/{lomar,mae,cae}/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512_cae.py.
_base_ = './upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

model = dict(backbone=dict(layer_scale_init_value=0.1))
optim_wrapper = dict(
    optimizer=dict(lr=3e-4),
    paramwise_cfg=dict(custom_keys={'pos_embed': dict(lr_mult=0., decay_mult=0.)}))
# both schedulers act from iteration 0 and mmengine multiplies them, as mmcv 1.x did; mmengine
# reaches a scheduler's final value one step before `end`, hence end + 1 for mmcv's values
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1501),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=0, end=160001),
]
