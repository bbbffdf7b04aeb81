"""abs (GPT): a learned embedding per absolute position, added to the residual stream.

The in-attention part is content-only (the default); the scheme's :meth:`residual_embedding` is the table the
model adds at ``hook_pos_embed``.
"""
from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import nn

from plm_interp.model.positional.base import AttentionPositional, ModelConfig


class Absolute(AttentionPositional):
    name, tl_name, rank = "abs", "standard", 0
    summary = "learned absolute position embedding (GPT)"

    @classmethod
    def residual_embedding(cls, cfg: ModelConfig) -> "PosEmbed":
        return PosEmbed(cfg)


class PosEmbed(nn.Module):
    """``W_pos[n_ctx, d_model]``: the position embedding table (TransformerLens' name and layout)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model, dtype=cfg.torch_dtype))

    def forward(self, pos: Int[torch.Tensor, "pos"], batch: int) -> Float[torch.Tensor, "batch pos d_model"]:
        """The rows of ``W_pos`` at positions ``pos``, broadcast over the batch: what the model adds to the residual
        stream at ``hook_pos_embed``. Positions ``>= n_ctx`` raise."""
        if int(pos[-1]) >= self.W_pos.shape[0]:
            raise ValueError(f"position {int(pos[-1])} is past n_ctx = {self.W_pos.shape[0]} for absolute positions")
        return self.W_pos[pos].unsqueeze(0).expand(batch, -1, -1)
