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

from dataclasses import dataclass

import torch

from plm_interp.model.positional.base import AttentionPositional, ModelConfig, SchemeConfig, relative_offsets
from plm_interp.validation import ConfigError, check_choice

#: the window rules ``window_sizes`` knows
UNI_WINDOW_RULES = ("2^h-1", "2^(h-1)")
#: the most heads a window rule may give (head h's window is about 2^h tokens)
MAX_UNI_HEADS = 30


def window_sizes(n_heads: int, rule: str) -> list[int]:
    """Window length w(h) for heads h = 1..n_heads under ``rule``."""
    if rule == "2^h-1":
        return [2**h - 1 for h in range(1, n_heads + 1)]
    if rule == "2^(h-1)":
        return [2 ** (h - 1) for h in range(1, n_heads + 1)]
    raise ValueError(f"uni_window_rule {rule!r} is unknown")


@dataclass
class UniformConfig(SchemeConfig):
    """uni's setting: which window rule (see the module's docstring for why there are two)."""

    uni_window_rule: str = "2^h-1"  # head h = 1..n_heads averages the last w(h) tokens

    def validate(self, cfg: ModelConfig) -> None:
        check_choice("config field 'uni_window_rule'", self.uni_window_rule, UNI_WINDOW_RULES)
        if cfg.n_heads > MAX_UNI_HEADS:
            raise ConfigError(f"config field 'n_heads' = {cfg.n_heads}: uni's window rule {self.uni_window_rule} "
                              f"gives head windows up to 2^n_heads tokens; at most {MAX_UNI_HEADS} heads are allowed")


class Uniform(AttentionPositional):
    name, tl_name, rank = "uni", "uniform", 4
    summary = "fixed uniform attention over exponential windows (GPT_uni)"
    uses_qk = False
    config_class = UniformConfig

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        windows = torch.tensor(window_sizes(cfg.n_heads, cfg.uni_window_rule), dtype=torch.long)
        self.register_buffer("windows", windows, persistent=False)

    def score_bias(self, q, k, q_pos, k_pos):
        dist = relative_offsets(q_pos, k_pos).abs()  # causal masking is applied by the attention layer
        inside = dist[None] < self.windows[:, None, None]
        zero = torch.zeros((), dtype=self.cfg.torch_dtype, device=dist.device)
        return torch.where(inside, zero, torch.tensor(float("-inf"), dtype=zero.dtype, device=dist.device)).unsqueeze(0)
