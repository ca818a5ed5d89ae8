# MoCo v3's encoder (facebookresearch/moco-v3 vits.py): timm's ViT with one bias for q, k and v
# (:122-127) and the fixed 2-D sin-cos table of :53-69, the formula CAE took over (CAE's channel
# order). Whether the table stays fixed or starts a learned one is the transfer protocol's
# choice, not set here. The same flags as lomar_transfer/sources/mocov3.py (a test checks it).
mocov3_encoder = dict(sincos_order='cae', qkv_bias=True)
