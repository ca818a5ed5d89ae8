# CAE's encoder (lxtGH/CAE): learnable q and v biases, k without (models/modeling_finetune.py:68-75,
# 111-115), LayerScale 0.1 (scripts/cae_base_800e.sh:24), the fixed 2-D sin-cos table
# (--sincos_pos_emb, :28) in CAE's channel order. Whether the table
# stays fixed or starts a learned one is the transfer protocol's choice, not set here.
# Every CAE config names these flags only through this preset:
#     _base_ = [<protocol>, '../_base_/encoders/cae.py']
#     model = dict(backbone=dict(_base_.cae_encoder, init_cfg=...))
# (a key the leaf passes beside the preset wins; the preset wins over the protocol).
cae_encoder = dict(qkv_bias='qv', layer_scale_init_value=0.1, sincos_order='cae')
