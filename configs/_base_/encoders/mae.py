# MAE's encoder (facebookresearch/mae): one bias for q, k and v (models_mae.py:40); the fixed 2-D
# sin-cos position table in MAE's channel order (models_mae.py:68, util/pos_embed.py). Whether the
# table stays fixed or starts a learned one is the transfer protocol's choice, not set here.
# Every MAE config names these flags only through this preset:
#     _base_ = [<protocol>, '../_base_/encoders/mae.py']
#     model = dict(backbone=dict(_base_.mae_encoder, init_cfg=...))
# (a key the leaf passes beside the preset wins; the preset wins over the protocol).
mae_encoder = dict(qkv_bias=True, sincos_order='mae')
