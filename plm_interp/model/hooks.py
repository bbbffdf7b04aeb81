"""Tiny helpers around TransformerLens' HookPoint (importable from both the 3.x and 4.x lines)."""
from __future__ import annotations

from transformer_lens.hook_points import HookPoint


def is_hooked(*points: HookPoint) -> bool:
    """True when any of ``points`` has a forward or backward hook attached (TL's lists or torch's own)."""
    for hp in points:
        if getattr(hp, "fwd_hooks", None) or getattr(hp, "bwd_hooks", None):
            return True
        if hp._forward_hooks or hp._backward_hooks or hp._forward_pre_hooks:
            return True
    return False


__all__ = ["HookPoint", "is_hooked"]
