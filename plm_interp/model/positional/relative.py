"""rel (GPT_rel): DeBERTa-style disentangled relative attention.

score(i, j) = [ q_i·k_j  +  q_i·K_r[δ(i, j)]  +  k_j·Q_r[δ(j, i)] ] / sqrt(3 d_head)

with δ(i, j) = clip(i − j, −k, k − 1) + k, a table of 2k relative embeddings (k = ``rel_max_distance``) and
per-head projections ``W_K_rel`` / ``W_Q_rel`` of that table (content-to-position and position-to-content).
Each layer owns its table and projections.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from plm_interp.model.positional.base import AttentionPositional, ModelConfig, SchemeConfig, relative_offsets
from plm_interp.validation import ConfigError


@dataclass
class RelativeConfig(SchemeConfig):
    """rel's setting."""

    rel_max_distance: int = 128  # relative distances are clipped to [-k, k-1] (DeBERTa's k)

    def validate(self, cfg: ModelConfig) -> None:
        k = self.rel_max_distance
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"config field 'rel_max_distance' must be a positive integer, got {k!r}")


class Relative(AttentionPositional):
    name, tl_name, rank = "rel", "relative", 2
    summary = "DeBERTa-style relative attention (GPT_rel)"
    config_class = RelativeConfig

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        k, dt = cfg.rel_max_distance, cfg.torch_dtype
        self.scale = (3 * cfg.d_head) ** -0.5
        self.rel_embed = nn.Parameter(torch.empty(2 * k, cfg.d_model, dtype=dt))
        self.W_K_rel = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_model, cfg.d_head, dtype=dt))
        self.W_Q_rel = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_model, cfg.d_head, dtype=dt))

    def _bucket(self, offsets: torch.Tensor) -> torch.Tensor:
        k = self.cfg.rel_max_distance
        return offsets.clamp(-k, k - 1) + k

    def score_bias(self, q, k, q_pos, k_pos):
        # q: [batch, head, q_pos, d_head], k: [batch, head, k_pos, d_head]
        key_rel = torch.einsum("rd,hde->hre", self.rel_embed, self.W_K_rel)  # [head, 2k, d_head]
        query_rel = torch.einsum("rd,hde->hre", self.rel_embed, self.W_Q_rel)
        c2p_all = torch.einsum("bhqe,hre->bhqr", q, key_rel)  # [b, h, q, 2k]
        p2c_all = torch.einsum("bhke,hre->bhkr", k, query_rel)  # [b, h, k, 2k]
        offsets = relative_offsets(q_pos, k_pos)  # [q, k]
        b, h = q.shape[0], q.shape[1]
        idx_qk = self._bucket(offsets)[None, None].expand(b, h, -1, -1)
        idx_kq = self._bucket(-offsets).T[None, None].expand(b, h, -1, -1)  # [.., k, q]
        c2p = torch.gather(c2p_all, 3, idx_qk)
        p2c = torch.gather(p2c_all, 3, idx_kq).transpose(-1, -2)
        return (c2p + p2c) * self.scale
