"""rot (GPT_rot): rotary embedding, GPT-NeoX style (the first ``rotary_dim`` dims of each head rotate,
split in two halves rather than interleaved).

The cos/sin tables are computed for the positions a forward pass uses (and kept for the next call), never for
the whole ``n_ctx`` up front: a large ``n_ctx`` costs nothing until it is used, and the tables are a pure
function of the config, so checkpoints do not store them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from plm_interp.model.positional.base import AttentionPositional, ModelConfig, SchemeConfig
from plm_interp.validation import ConfigError


@dataclass
class RotaryConfig(SchemeConfig):
    """rot's settings (TransformerLens' names)."""

    rotary_dim: int | None = None  # how many dims of each head rotate (default d_head)
    rotary_base: float = 10000.0  # theta: dimension pair i turns by position * base^(-2i / rotary_dim)

    def resolve(self, cfg: ModelConfig) -> None:
        if self.rotary_dim is None:
            self.rotary_dim = cfg.d_head

    def validate(self, cfg: ModelConfig) -> None:
        dim = self.rotary_dim
        if isinstance(dim, bool) or not isinstance(dim, int) or dim % 2 or not 0 < dim <= cfg.d_head:
            raise ConfigError(f"config field 'rotary_dim' = {dim!r} must be even and in (0, d_head={cfg.d_head}]")
        base = self.rotary_base
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not math.isfinite(base) or base <= 0:
            # base**(-2i/d) is inf or NaN for base 0, negative or NaN: every rotated q/k, and the loss, is NaN
            raise ConfigError(f"config field 'rotary_base' must be a finite number > 0, got {base!r}")


class Rotary(AttentionPositional):
    name, tl_name, rank = "rot", "rotary", 1
    summary = "rotary, GPT-NeoX style (GPT_rot)"
    rotates = True
    config_class = RotaryConfig

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        dim = cfg.rotary_dim
        self._inv_freq = 1.0 / (cfg.rotary_base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        self._cached: tuple[int, torch.Tensor, torch.Tensor] | None = None  # (length, cos, sin)

    def rotate(self, q, k, q_pos, k_pos):
        if q.shape == k.shape and torch.equal(q_pos, k_pos):  # the usual case: rotate q and k in one pass
            both = self._rotate(torch.stack([q, k]).flatten(0, 1), q_pos)
            return both[: q.shape[0]], both[q.shape[0]:]
        return self._rotate(q, q_pos), self._rotate(k, k_pos)

    def _tables(self, pos: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        start, n = int(pos[0]), pos.shape[0]
        if start + n > self.cfg.n_ctx:
            raise ValueError(f"position {start + n - 1} is past n_ctx = {self.cfg.n_ctx} for rotary tables")
        cached = self._cached
        if cached is None or cached[0] < start + n or cached[1].device != pos.device or cached[1].dtype != dtype:
            length = min(self.cfg.n_ctx, max(start + n, 2 * cached[0] if cached else 0))
            angles = torch.arange(length, dtype=torch.float64)[:, None] * self._inv_freq[None, :]
            angles = torch.cat([angles, angles], dim=-1)
            cached = self._cached = (length, angles.cos().to(pos.device, dtype), angles.sin().to(pos.device, dtype))
        # positions are always a contiguous range here (prefix or KV-cached continuation): slice, don't gather
        cos, sin = cached[1][start: start + n], cached[2][start: start + n]
        return cos[None, :, None, :], sin[None, :, None, :]

    def _rotate(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        dim = self.cfg.rotary_dim
        cos, sin = self._tables(pos, x.dtype)
        x_rot = x[..., :dim]
        half = dim // 2
        rotated_half = torch.cat([-x_rot[..., half:], x_rot[..., :half]], dim=-1)
        x_rot = x_rot * cos + rotated_half * sin
        return torch.cat([x_rot, x[..., dim:]], dim=-1) if dim < x.shape[-1] else x_rot
