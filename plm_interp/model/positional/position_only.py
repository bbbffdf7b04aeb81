"""pos (GPT_pos): each head's attention weights are a trainable function of i − j only.

The score table ``W_pos_attn[head, 2 n_ctx − 1]`` is indexed by the offset i − j; softmax over the allowed
keys turns it into the pattern. Values stay content-based, so the layer still moves information, but it
cannot choose *what* to read by content. There is no W_Q / W_K.
"""
from __future__ import annotations

import torch
from torch import nn

from plm_interp.model.positional.base import AttentionPositional, ModelConfig, relative_offsets


class PositionOnly(AttentionPositional):
    name, tl_name, rank = "pos", "position_only", 3
    summary = "attention weights a trainable function of i − j (GPT_pos)"
    uses_qk = False

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.W_pos_attn = nn.Parameter(torch.zeros(cfg.n_heads, 2 * cfg.n_ctx - 1, dtype=cfg.torch_dtype))

    def score_bias(self, q, k, q_pos, k_pos):
        offsets = relative_offsets(q_pos, k_pos) + (self.cfg.n_ctx - 1)
        return self.W_pos_attn[:, offsets].unsqueeze(0)  # [1, head, q, k]
