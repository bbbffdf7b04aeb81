"""Embedding, LayerNorm, MLP and unembedding, with TransformerLens' parameter names, layouts and hooks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn

from plm_interp.model.config import PLMConfig
from plm_interp.model.hooks import HookPoint, use_fused


class Embed(nn.Module):
    def __init__(self, cfg: PLMConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model, dtype=cfg.torch_dtype))

    def forward(self, tokens: Int[torch.Tensor, "batch pos"]) -> Float[torch.Tensor, "batch pos d_model"]:
        return self.W_E[tokens]


class LayerNorm(nn.Module):
    """LayerNorm exposing ``hook_scale`` and ``hook_normalized``; fused ``F.layer_norm`` while both are idle."""

    fast_path = "train"  # see plm_interp/model/hooks.py; HookedPLM.fast_path sets it

    def __init__(self, cfg: PLMConfig, length: int | None = None):
        super().__init__()
        self.eps = cfg.eps
        length = cfg.d_model if length is None else length
        self.w = nn.Parameter(torch.ones(length, dtype=cfg.torch_dtype))
        self.b = nn.Parameter(torch.zeros(length, dtype=cfg.torch_dtype))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, length]

    def forward(self, x: Float[torch.Tensor, "*batch d"]) -> Float[torch.Tensor, "*batch d"]:
        if use_fused(self, self.hook_scale, self.hook_normalized):
            return F.layer_norm(x, self.w.shape, self.w, self.b, self.eps)
        # As TransformerLens: statistics in float32 for half dtypes (F.layer_norm accumulates in float32 too,
        # so both paths stay finite together), and ``hook_normalized`` is x / scale *before* w and b.
        dtype = x.dtype
        x = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized((x / scale).to(dtype)) * self.w + self.b


_ACT = {"gelu": F.gelu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu, "silu": F.silu}


class MLP(nn.Module):
    def __init__(self, cfg: PLMConfig):
        super().__init__()
        dt = cfg.torch_dtype
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp, dtype=dt))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp, dtype=dt))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model, dtype=dt))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model, dtype=dt))
        self.act = _ACT[cfg.act_fn]
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: Float[torch.Tensor, "batch pos d_model"]) -> Float[torch.Tensor, "batch pos d_model"]:
        pre = self.hook_pre(torch.addmm(self.b_in, x.reshape(-1, x.shape[-1]), self.W_in).view(*x.shape[:-1], -1))
        post = self.hook_post(self.act(pre))
        return torch.addmm(self.b_out, post.reshape(-1, post.shape[-1]), self.W_out).view(*x.shape)


class Unembed(nn.Module):
    def __init__(self, cfg: PLMConfig):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab_out, dtype=cfg.torch_dtype))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab_out, dtype=cfg.torch_dtype))
        self.hook_in = HookPoint()  # [batch, pos, d_model]: the final normalised residual (TL 4's unembed.hook_in)
        self.hook_out = HookPoint()  # [batch, pos, d_vocab_out]: the logits

    def forward(self, x: Float[torch.Tensor, "batch pos d_model"]) -> Float[torch.Tensor, "batch pos d_vocab_out"]:
        x = self.hook_in(x)
        return self.hook_out(torch.addmm(self.b_U, x.reshape(-1, x.shape[-1]), self.W_U).view(*x.shape[:-1], -1))
