"""rot (GPT_rot): rotary embedding, GPT-NeoX style (the first ``rotary_dim`` dims of each head rotate,
split in two halves rather than interleaved)."""
from __future__ import annotations

import torch

from plm_interp.config import PLMConfig
from plm_interp.model.positional.base import AttentionPositional


class Rotary(AttentionPositional):
    rotates = True

    def __init__(self, cfg: PLMConfig):
        super().__init__(cfg)
        dim = cfg.rotary_dim
        inv_freq = 1.0 / (cfg.rotary_base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        angles = torch.arange(cfg.n_ctx, dtype=torch.float64)[:, None] * inv_freq[None, :]
        angles = torch.cat([angles, angles], dim=-1)
        # Buffers are not saved in checkpoints: they are a pure function of the config.
        self.register_buffer("cos", angles.cos().to(cfg.torch_dtype), persistent=False)
        self.register_buffer("sin", angles.sin().to(cfg.torch_dtype), persistent=False)


    def rotate(self, q, k, q_pos, k_pos):
        if q.shape == k.shape and torch.equal(q_pos, k_pos):  # the usual case: rotate q and k in one pass
            both = self._rotate(torch.stack([q, k]).flatten(0, 1), q_pos)
            return both[: q.shape[0]], both[q.shape[0]:]
        return self._rotate(q, q_pos), self._rotate(k, k_pos)

    def _tables(self, pos: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        start, n = int(pos[0]), pos.shape[0]
        if start + n > self.cos.shape[0]:
            raise ValueError(f"position {start + n - 1} is past n_ctx = {self.cos.shape[0]} for rotary tables")
        # positions are always a contiguous range here (prefix or KV-cached continuation): slice, don't gather
        cos, sin = self.cos[start: start + n], self.sin[start: start + n]
        return cos[None, :, None, :].to(dtype), sin[None, :, None, :].to(dtype)

    def _rotate(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        dim = self.cfg.rotary_dim
        cos, sin = self._tables(pos, x.dtype)
        x_rot = x[..., :dim]
        half = dim // 2
        rotated_half = torch.cat([-x_rot[..., half:], x_rot[..., :half]], dim=-1)
        x_rot = x_rot * cos + rotated_half * sin
        return torch.cat([x_rot, x[..., dim:]], dim=-1) if dim < x.shape[-1] else x_rot
