"""Positional schemes, one small module each, chosen by ``PLMConfig.positional``.

=====  ==========================================================  =====================
name   what it is                                                  module
=====  ==========================================================  =====================
abs    learned absolute position embedding (GPT)                   ``absolute.py``
rot    rotary, GPT-NeoX style (GPT_rot)                            ``rotary.py``
rel    DeBERTa-style relative attention (GPT_rel)                  ``relative.py``
pos    attention weights a trainable function of i − j (GPT_pos)   ``position_only.py``
uni    fixed uniform attention over exponential windows (GPT_uni)  ``uniform.py``
none   no positional information (NoPE)                            ``nope.py``
=====  ==========================================================  =====================

Every module of this package is imported here, and defining a scheme class registers it (see ``base.py``):
adding a scheme is adding one file.
"""
from __future__ import annotations

import importlib
import pkgutil

from plm_interp.model.positional.base import SCHEMES, AttentionPositional, ModelConfig, SchemeConfig, setting_names

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def scheme_names() -> tuple[str, ...]:
    """The registered scheme names, in the papers' order (abs, rot, rel, pos, uni, none; new ones after)."""
    return tuple(sorted(SCHEMES, key=lambda n: (SCHEMES[n].rank, n)))


def attention_positional(cfg: ModelConfig) -> AttentionPositional:
    """The in-attention component of ``cfg.positional`` for one layer."""
    return SCHEMES[cfg.positional](cfg)


from plm_interp.model.positional.absolute import PosEmbed  # noqa: E402  (re-exported names)
from plm_interp.model.positional.uniform import window_sizes  # noqa: E402

__all__ = ["SCHEMES", "AttentionPositional", "ModelConfig", "PosEmbed", "SchemeConfig", "attention_positional",
           "scheme_names", "setting_names", "window_sizes"]
