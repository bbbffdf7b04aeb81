"""uni (GPT_uni): fixed uniform attention, no parameters in the pattern.

Head h (1-based) averages the values of the last w(h) tokens, itself included. The window rule is a config
field because the sources disagree:

* ``"2^h-1"`` (default): w(h) = 2^h − 1 = 1, 3, 7, 15, ... — the formula written in the Part 1 paper, so the
  first head sees only the token itself and windows nest without ever coinciding;
* ``"2^(h-1)"``: w(h) = 1, 2, 4, 8, ... — the variant in secondary write-ups.

Windows longer than the context simply average everything seen so far. The scores this layer exposes at
``hook_attn_scores`` are 0 inside the window and −inf outside: softmax of them is exactly the uniform pattern.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from plm_interp.model.positional.base import AttentionPositional, relative_offsets

if TYPE_CHECKING:
    from plm_interp.config import PLMConfig


def window_sizes(n_heads: int, rule: str) -> list[int]:
    """Window length w(h) for heads h = 1..n_heads under ``rule``."""
    if rule == "2^h-1":
        return [2**h - 1 for h in range(1, n_heads + 1)]
    if rule == "2^(h-1)":
        return [2 ** (h - 1) for h in range(1, n_heads + 1)]
    raise ValueError(f"uni_window_rule {rule!r} is unknown")


class Uniform(AttentionPositional):
    name, tl_name, rank = "uni", "uniform", 4
    summary = "fixed uniform attention over exponential windows (GPT_uni)"
    uses_qk = False

    @classmethod
    def validate(cls, cfg: "PLMConfig") -> None:
        from plm_interp.config import ConfigError, UNI_WINDOW_RULES

        if cfg.uni_window_rule not in UNI_WINDOW_RULES:
            raise ConfigError(f"config field 'uni_window_rule' = {cfg.uni_window_rule!r} is not one of "
                              f"{list(UNI_WINDOW_RULES)}")
        if cfg.n_heads > 30:
            raise ConfigError(f"config field 'n_heads' = {cfg.n_heads}: uni's window rule {cfg.uni_window_rule} "
                              "gives head windows up to 2^n_heads tokens; at most 30 heads are allowed")
    def __init__(self, cfg: "PLMConfig"):
        super().__init__(cfg)
        windows = torch.tensor(window_sizes(cfg.n_heads, cfg.uni_window_rule), dtype=torch.long)
        self.register_buffer("windows", windows, persistent=False)

    def score_bias(self, q, k, q_pos, k_pos):
        dist = relative_offsets(q_pos, k_pos).abs()  # causal masking is applied by the attention layer
        inside = dist[None] < self.windows[:, None, None]
        zero = torch.zeros((), dtype=self.cfg.torch_dtype, device=dist.device)
        return torch.where(inside, zero, torch.tensor(float("-inf"), dtype=zero.dtype, device=dist.device)).unsqueeze(0)
