# The CPU-sized ViT of the *_synthetic pretraining configs, set up for dense tasks: no class
# token, windowed attention (12x12 patches: 2x2 windows on 192 px inputs) with global attention
# in blocks 1 and 3, drop path, feature maps of every block (BEiT/CAE-style pyramid, one block
# per scale). Method configs add their position encoding and `pretrained`. Names are prefixed to
# combine with task bases.
vit_dims = 128
vit_backbone = dict(
    _delete_=True,  # replaces the task config's ResNet-50
    type='lomar_transfer.VisionTransformer',
    arch=dict(embed_dims=vit_dims, depth=4, num_heads=4, mlp_hidden_dims=4 * vit_dims),
    patch_size=8,
    img_size=112,
    with_cls_token=False,
    window_size=12,
    global_attn_indices=(1, 3),
    drop_path_rate=0.1,
    out_indices=(0, 1, 2, 3),
    out_type='featmap')
# stride-8 maps -> strides 4, 8, 16, 32
vit_pyramid = dict(type='lomar_transfer.ViTFeaturePyramid', in_channels=vit_dims,
                   scales=(2, 1, 0.5, 0.25))
# AdamW + layer-wise lr decay (0.75, the CAE detection recipe); lr 6e-4: the largest of 3e-4 /
# 6e-4 that we tried, heads converge within the few hundred CPU iterations
vit_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75, custom_keys={
        'norm': dict(decay_mult=0.), 'bias': dict(decay_mult=0.),
        'pos_embed': dict(decay_mult=0.), 'lookup_table_weight': dict(decay_mult=0.)}))
