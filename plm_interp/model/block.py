"""One pre-LayerNorm transformer block with TransformerLens' residual-stream hooks."""
from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import nn

from plm_interp.config import PLMConfig
from plm_interp.model.attention import Attention
from plm_interp.model.components import MLP, LayerNorm
from plm_interp.model.hooks import HookPoint
from plm_interp.model.kv_cache import KVCacheEntry


class TransformerBlock(nn.Module):
    def __init__(self, cfg: PLMConfig):
        super().__init__()
        self.ln1 = LayerNorm(cfg)
        self.attn = Attention(cfg)
        self.ln2 = LayerNorm(cfg)
        self.mlp = MLP(cfg)
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(
        self,
        resid: Float[torch.Tensor, "batch pos d_model"],
        pos: Int[torch.Tensor, "pos"],
        cache: KVCacheEntry | None = None,
    ) -> Float[torch.Tensor, "batch pos d_model"]:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(self.ln1(resid), pos, cache)))
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(self.ln2(resid))))
