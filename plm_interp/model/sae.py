"""HookedSAEPLM: sae-lens's ``HookedSAETransformer`` API (``add_sae``, ``run_with_saes``,
``run_with_cache_with_saes``, ``saes()``, ``use_error_term``) on a HookedPLM.

sae-lens pins transformer-lens < 4, so this module needs the TL 3.9 line (``bash scripts/test_other_tl.sh``
builds that environment); nothing else in plm_interp imports it. sae-lens's methods work on any
``HookedRootModule`` with a ``hook_dict``: they are taken from ``HookedSAETransformer`` itself (not copied), so
their behaviour follows the installed sae-lens. Only ``forward`` is our own, because sae-lens's calls
``HookedTransformer.forward`` through ``super()``. See docs/sae_lens_nnsight.md for the recipe.
"""
from __future__ import annotations

from typing import Any

from sae_lens import HookedSAETransformer

from plm_interp.model.hooked_plm import HookedPLM

#: HookedSAETransformer's SAE-splicing methods, used unchanged.
SAE_METHODS = ("acts_to_saes", "add_sae", "_reset_sae", "reset_saes", "_compute_exclusion_mask", "_token_masks",
               "run_with_saes", "run_with_cache_with_saes", "run_with_hooks_with_saes", "saes")


class HookedSAEPLM(HookedPLM):
    """A HookedPLM that SAEs can be spliced into at any hook point, as in sae-lens's HookedSAETransformer."""

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self._acts_to_saes: dict[str, Any] = {}
        self._transcoder_output_hooks: dict[str, str] = {}

    @classmethod
    def from_model(cls, model: HookedPLM) -> "HookedSAEPLM":
        """The same weights, config, tokenizer and mode as ``model`` (a trained or shipped HookedPLM)."""
        out = cls(model.cfg).to(model.W_E.device)
        out.load_state_dict(model.state_dict())
        out.tokenizer = model.tokenizer
        out.fast_path = model.fast_path
        return out.train(model.training)

    def forward(self, input: Any, **kwargs: Any) -> Any:
        with self._token_masks(input, kwargs):  # sae-lens's per-pass special-token masks
            return super().forward(input, **kwargs)


for _name in SAE_METHODS:
    setattr(HookedSAEPLM, _name, HookedSAETransformer.__dict__[_name])

__all__ = ["HookedSAEPLM", "SAE_METHODS"]
