"""Positional schemes, one small module each, chosen by ``PLMConfig.positional``.

=====  ==========================================================  =====================
name   what it is                                                  module
=====  ==========================================================  =====================
abs    learned absolute position embedding (GPT)                   ``absolute.py``
rot    rotary, GPT-NeoX style (GPT_rot)                            ``rotary.py``
rel    DeBERTa-style relative attention (GPT_rel)                  ``relative.py``
pos    attention weights a trainable function of i − j (GPT_pos)   ``position_only.py``
uni    fixed uniform attention over exponential windows (GPT_uni)  ``uniform.py``
none   no positional information (NoPE)                            ``base.py``
=====  ==========================================================  =====================
"""
from __future__ import annotations

from plm_interp.config import PLMConfig
from plm_interp.model.positional.absolute import PosEmbed
from plm_interp.model.positional.base import AttentionPositional
from plm_interp.model.positional.position_only import PositionOnly
from plm_interp.model.positional.relative import Relative
from plm_interp.model.positional.rotary import Rotary
from plm_interp.model.positional.uniform import Uniform, window_sizes

SCHEMES: dict[str, type[AttentionPositional]] = {
    "abs": AttentionPositional,
    "rot": Rotary,
    "rel": Relative,
    "pos": PositionOnly,
    "uni": Uniform,
    "none": AttentionPositional,
}


def attention_positional(cfg: PLMConfig) -> AttentionPositional:
    """The in-attention component of ``cfg.positional`` for one layer."""
    return SCHEMES[cfg.positional](cfg)


__all__ = ["SCHEMES", "AttentionPositional", "PosEmbed", "attention_positional", "window_sizes"]
