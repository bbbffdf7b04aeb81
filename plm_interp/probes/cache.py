"""Residual-stream activations of a whole probe dataset, computed once for every requested layer.

Why cache: a probe is fitted by many full-batch passes over the same features; re-running the frozen model for
each pass (or each level, probe kind, layer) multiplied the cost of an analysis by the number of passes. One
forward pass per string batch fills every layer at once (hooks on the lower layers, ``stop_at_layer`` at the
highest), so the model's cost is paid once per dataset.
"""
from __future__ import annotations

import torch
from jaxtyping import Float, Int

from plm_interp.probes.activations import check_layer, fused, hook_name


@torch.no_grad()
def cache_residuals(model, tokens: Int[torch.Tensor, "n pos"], layers: list[int], batch_size: int = 128,
                    on_batch=None) -> dict[int, Float[torch.Tensor, "n pos d_model"]]:
    """``{layer: residual stream [n, pos, d_model]}`` (float32) for every layer in ``layers``, one pass per batch."""
    layers = sorted({check_layer(model, l) for l in layers})
    top = layers[-1]
    names = {hook_name(model, l): l for l in layers if l != top}
    out = {l: torch.empty(tokens.shape[0], tokens.shape[1], model.cfg.d_model) for l in layers}
    for start in range(0, tokens.shape[0], batch_size):
        rows = slice(start, min(start + batch_size, tokens.shape[0]))
        seen = {}
        hooks = [(name, _saver(seen, layer)) for name, layer in names.items()]
        with fused(model), model.hooks(fwd_hooks=hooks):
            out[top][rows] = model(tokens[rows], stop_at_layer=top).float()
        for layer, act in seen.items():
            out[layer][rows] = act
        if on_batch is not None:
            on_batch()
    return out


def _saver(seen: dict, layer: int):
    def hook(act, hook):
        seen[layer] = act.detach().float()
    return hook
