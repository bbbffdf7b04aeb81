"""Residual-stream activations, computed batch by batch (never the whole dataset at once).

Layer ``l`` means the residual stream after ``l`` blocks: 0 is the embeddings (``blocks.0.hook_resid_pre``),
``n_layers`` the last block's output (``blocks.{n_layers-1}.hook_resid_post``, before ``ln_final``).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from jaxtyping import Float, Int


def check_layer(model, layer: int) -> int:
    """``layer`` in 0..n_layers (0 = embeddings; negatives count from the end) as a non-negative index."""
    n = model.cfg.n_layers
    if not isinstance(layer, int) or not -n - 1 <= layer <= n:
        raise ValueError(f"layer = {layer!r} does not exist: the model has layers 0..{n} (0 = embeddings)")
    return layer % (n + 1)


def hook_name(model, layer: int) -> str:
    layer = check_layer(model, layer)
    return "blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"


@torch.no_grad()
def residual(model, tokens: Int[torch.Tensor, "batch pos"], layer: int) -> Float[torch.Tensor, "batch pos d_model"]:
    """The residual stream at ``layer``; runs only the blocks below it."""
    layer = check_layer(model, layer)
    return model(tokens, stop_at_layer=layer)


def stream_residual(model, tokens: Int[torch.Tensor, "n pos"], layer: int, batch_size: int = 64
                    ) -> Iterator[tuple[slice, torch.Tensor]]:
    """``(rows, activations)`` for consecutive row blocks of ``tokens``."""
    for start in range(0, tokens.shape[0], batch_size):
        rows = slice(start, min(start + batch_size, tokens.shape[0]))
        yield rows, residual(model, tokens[rows], layer)


def resolve_layers(model, layers: int | list[int] | str | None) -> list[int]:
    """A probe's ``layers`` option as a list: None is the last layer, ``"all"`` every layer 0..n_layers, an int or
    a list of ints each checked by :func:`check_layer` (bools are refused: ``True`` is not layer 1)."""
    if layers is None:
        return [model.cfg.n_layers]
    if layers == "all":
        return list(range(model.cfg.n_layers + 1))
    items = [layers] if isinstance(layers, int) and not isinstance(layers, bool) else layers
    if isinstance(items, str) or not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"layers = {layers!r}: give None (the last layer), 'all', a layer index or a non-empty list")
    out = []
    for l in items:
        if isinstance(l, bool) or not isinstance(l, int):
            raise ValueError(f"layers = {layers!r}: {l!r} is not a layer index (an int)")
        out.append(check_layer(model, l))
    return out


@contextmanager
def fused(model):
    """Run ``model`` on its fused kernels (``scaled_dot_product_attention``, ``F.layer_norm``) inside, eval mode too.

    Why: a probe runs the frozen model over and over and never reads the attention pattern or the LayerNorm scale,
    but a model in eval mode runs every hook point (``plm_interp.model.hooks``), 1.3-2x slower. The fused path gives
    the same numbers to float tolerance (``tests/test_model_fast_path.py``), and a TransformerLens hook a user attached
    to a point it would skip still forces the explicit path, so no hook is ever bypassed. A model without a
    ``fast_path`` setting is run as it is."""
    if not hasattr(model, "fast_path"):
        yield model
        return
    old = model.fast_path
    model.fast_path = "on"
    try:
        yield model
    finally:
        model.fast_path = old
