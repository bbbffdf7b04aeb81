"""HookedSAEPLM: sae-lens's ``HookedSAETransformer`` API (``add_sae``, ``run_with_saes``,
``run_with_cache_with_saes``, ``saes()``, ``use_error_term``) on a HookedPLM.

``from plm_interp.model.sae import HookedSAEPLM`` needs sae-lens, which pins transformer-lens < 4: it installs on
the TL 3.9 line only (``bash scripts/test_other_tl.sh`` builds that environment). This module itself imports
without sae-lens; the class is built on first access. sae-lens's methods work on any ``HookedRootModule`` with a
``hook_dict``, so they are taken from ``HookedSAETransformer`` itself (not copied) and follow the installed
sae-lens; only ``forward`` is our own, because sae-lens's calls ``HookedTransformer.forward`` through
``super()``. See docs/sae_lens_nnsight.md for the recipe.
"""
from __future__ import annotations

from typing import Any

from plm_interp.model.hooked_plm import HookedPLM

#: HookedSAETransformer's SAE-splicing methods, used unchanged.
SAE_METHODS = ("acts_to_saes", "add_sae", "_reset_sae", "reset_saes", "_compute_exclusion_mask", "_token_masks",
               "run_with_saes", "run_with_cache_with_saes", "run_with_hooks_with_saes", "saes")
_CLASS: type | None = None


def hooked_sae_plm_class() -> type:
    """The ``HookedSAEPLM`` class (a HookedPLM subclass with sae-lens's splicing methods); raises ImportError
    with the reason when sae-lens is missing."""
    global _CLASS
    if _CLASS is None:
        try:
            from sae_lens import HookedSAETransformer
        except ImportError as err:
            raise ImportError("HookedSAEPLM needs sae-lens, which requires transformer-lens < 4; use the TL 3.9 "
                              "environment (bash scripts/test_other_tl.sh builds .venv-tl3)") from err

        class HookedSAEPLM(HookedPLM):
            """A HookedPLM that SAEs can be spliced into at any hook point, as sae-lens's HookedSAETransformer."""

            def __init__(self, cfg: Any):
                super().__init__(cfg)
                self._acts_to_saes: dict[str, Any] = {}
                self._transcoder_output_hooks: dict[str, str] = {}

            @classmethod
            def from_model(cls, model: HookedPLM) -> "HookedSAEPLM":
                """The same weights, config, tokenizer, fast-path mode and train/eval mode as ``model``."""
                out = cls(model.cfg).to(model.W_E.device)
                out.load_state_dict(model.state_dict())
                out.tokenizer = model.tokenizer
                out.fast_path = model.fast_path
                return out.train(model.training)

            def forward(self, input: Any, **kwargs: Any) -> Any:
                with self._token_masks(input, kwargs):  # sae-lens's per-pass special-token masks
                    return super().forward(input, **kwargs)

        for name in SAE_METHODS:
            setattr(HookedSAEPLM, name, HookedSAETransformer.__dict__[name])
        HookedSAEPLM.__module__ = __name__
        _CLASS = HookedSAEPLM
    return _CLASS


def __getattr__(name: str) -> Any:
    if name == "HookedSAEPLM":
        return hooked_sae_plm_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SAE_METHODS", "hooked_sae_plm_class"]
