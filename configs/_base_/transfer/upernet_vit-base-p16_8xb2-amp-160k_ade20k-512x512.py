# UperNet + auxiliary FCN head on a pretrained ViT-B/16 for ADE20K: mmseg's own MAE recipe
# (mmseg configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py: 512x512 crops, 160k
# iterations of 16 images, AdamW lr 1e-4, layer decay 0.65, drop path 0.1, sliding-window test)
# with only the backbone swapped for ours. Its Feature2Pyramid neck (deconv x4, deconv x2,
# identity, max-pool on blocks 4/6/8/12) stays. Per-method leaves:
# configs/{lomar,mae,cae}/upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py.
_base_ = 'mmseg::mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)

model = dict(
    pretrained=None,  # the method leaves set backbone.pretrained (mmseg would pass it on too)
    backbone=dict(
        _delete_=True,  # replaces the task config's own backbone
        type='lomar_transfer.VisionTransformer',
        arch='base',
        patch_size=16,
        img_size=512,
        with_cls_token=False,
        drop_path_rate=0.1,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',
        final_norm=False))
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='lomar_transfer.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65, custom_keys={
        k: dict(decay_mult=0.)
        for k in ('norm', 'bias', 'pos_embed', 'lookup_table_weight')}))
