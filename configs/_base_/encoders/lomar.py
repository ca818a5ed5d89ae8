# LoMaR's encoder (junchen14/LoMaR): no absolute position embedding; position only through the
# contextual relative position encoding on the keys in every block
# (vision_transformer_irpe.py:37-38, 126; ratio 1.9, the ViT's rel_pos_ratio default), which also
# takes the place of a protocol's BEiT-style relative position bias table; one bias for q, k and
# v (models_lomar.py:49).
# Every LoMaR config names these flags only through this preset:
#     _base_ = [<protocol>, '../_base_/encoders/lomar.py']
#     model = dict(backbone=dict(_base_.lomar_encoder, init_cfg=...))
# (a key the leaf passes beside the preset wins; the preset wins over the protocol).
lomar_encoder = dict(pos_embed=None, rel_pos='contextual', rel_pos_bias=False, qkv_bias=True)
