"""Residual-stream activations, computed batch by batch (never the whole dataset at once).

Layer ``l`` means the residual stream after ``l`` blocks: 0 is the embeddings (``blocks.0.hook_resid_pre``),
``n_layers`` the last block's output (``blocks.{n_layers-1}.hook_resid_post``, before ``ln_final``).
"""
from __future__ import annotations

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
