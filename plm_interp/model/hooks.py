"""HookPoint (TransformerLens' class, importable from the 3.x and 4.x lines) and the fast-path rule.

Fast path: attention and LayerNorm have fused kernels (``scaled_dot_product_attention``, ``F.layer_norm``) that
never form the tensors at ``hook_attn_scores``, ``hook_pattern``, ``hook_scale`` and ``hook_normalized``. Whether
they may run is decided from public state only (no private torch attributes), by :func:`use_fused`:

* ``fast_path = "train"`` (the default): fused only while the module is in training mode and no
  TransformerLens hook is attached to the points it would skip. A model in eval mode — what ``HookedPLM``,
  ``from_pretrained`` and the shipped models give you — runs every hook point, so tools that intercept modules
  their own way (nnsight, plain ``register_forward_hook``) see every tensor without any setup.
* ``"off"``: never fused (every hook point runs, also in training mode).
* ``"on"``: fused whenever no TransformerLens hook is attached, also in eval mode (fastest inference; tools
  other than TransformerLens' hooks then do not see the skipped points).

Set it for the whole model with ``model.fast_path = "off"`` (see :class:`~plm_interp.model.HookedPLM`).
"""
from __future__ import annotations

from torch import nn
from transformer_lens.hook_points import HookPoint

FAST_PATH_MODES = ("train", "off", "on")


def is_hooked(*points: HookPoint) -> bool:
    """True when any of ``points`` has a TransformerLens forward or backward hook (its public hook lists)."""
    return any(getattr(hp, "fwd_hooks", None) or getattr(hp, "bwd_hooks", None) for hp in points)


def use_fused(module: nn.Module, *points: HookPoint) -> bool:
    """Whether ``module`` may run its fused kernel, skipping ``points`` (see the module docstring)."""
    mode = getattr(module, "fast_path", "train")
    if mode == "off" or (mode == "train" and not module.training):
        return False
    return not is_hooked(*points)


__all__ = ["FAST_PATH_MODES", "HookPoint", "is_hooked", "use_fused"]
