"""none (NoPE): no positional information at all; a causal model can still infer positions from the mask."""
from __future__ import annotations

from plm_interp.model.positional.base import AttentionPositional


class NoPositional(AttentionPositional):
    name, tl_name, rank = "none", "none", 5
    summary = "no positional information (NoPE)"
