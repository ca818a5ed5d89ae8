"""Key traits the official model code of several sources shares, for ``needs`` / ``never``."""
_BLOCK = r'(^|\.)blocks\.\d+\.'
QKV_BIAS = (_BLOCK + r'attn\.qkv\.bias$', "a fused q/k/v bias ('attn.qkv.bias')")
QV_BIAS = (_BLOCK + r'attn\.[qv]_bias$', "separate q/v biases ('attn.q_bias', CAE/BEiT's)")
IRPE = (_BLOCK + r'attn\.rpe_k\.', "relative position tables ('attn.rpe_k', LoMaR's)")
TIMM_LS = (_BLOCK + r'ls[12]\.gamma$', "timm-named layer scales ('ls1.gamma')")
GAMMA_LS = (_BLOCK + r'gamma_[12]$', "BEiT-named layer scales ('gamma_1')")
