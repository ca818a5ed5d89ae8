# Shared by the CPU-sized pretraining configs ({lomar,mae,cae}/*_synthetic.py): a 4-block ViT of
# width 128 on 112x112 crops of the embedded mini-ImageNet with 8x8 patches (a 14x14 grid, as
# ViT-B/16 at 224), fp32 AdamW, a short iteration schedule. Names are prefixed so that they do not
# collide with the method config they are combined with; the leaf configs assign them.
# root: $LOMAR_DATA_ROOT, else data/synthetic (set by tools/benchmark.py --data-root)
cpu_data_root = '{{$LOMAR_DATA_ROOT:data/synthetic}}/imagenet'
cpu_arch = dict(_delete_=True, embed_dims=128, depth=4, num_heads=4, mlp_hidden_dims=512)
cpu_img_size = 112
cpu_patch_size = 8
cpu_batch_size = 32
cpu_max_iters = 100
cpu_crop = dict(type='RandomResizedCrop', scale=112, crop_ratio_range=(0.2, 1.0),
                backend='pillow', interpolation='bicubic')
cpu_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', T_max=cpu_max_iters - 10, by_epoch=False, begin=10,
         end=cpu_max_iters),
]
cpu_train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=cpu_max_iters)
cpu_default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', interval=cpu_max_iters,
                    by_epoch=False, max_keep_ckpts=1))
cpu_optim_wrapper = dict(  # fp32 (no AMP on CPU); the official decay groups (timm's rule: none
    _delete_=True,          # for 1-D parameters and biases, decay for tokens and RPE tables)
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0., bias_decay_mult=0.))
