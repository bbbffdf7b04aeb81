"""Shared fixtures: tiny models of every positional scheme (seconds on CPU)."""
from __future__ import annotations

import pytest
import torch

from plm_interp import POSITIONAL_SCHEMES, HookedPLM, PLMConfig

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def tiny_config(positional: str, **overrides) -> PLMConfig:
    fields = dict(d_model=32, n_layers=2, n_heads=4, d_vocab=11, n_ctx=48, positional=positional, seed=0,
                  rel_max_distance=8)
    fields.update(overrides)
    return PLMConfig(**fields)


def tiny_model(positional: str, **overrides) -> HookedPLM:
    model = HookedPLM(tiny_config(positional, **overrides))
    # Non-zero biases and LN parameters, so tests also exercise them (they start at 0 / 1).
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture(params=POSITIONAL_SCHEMES)
def scheme(request) -> str:
    return request.param


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, 11, (3, 20), generator=torch.Generator().manual_seed(2))
