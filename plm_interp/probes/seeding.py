"""Seeded probe initialisation.

``nn.Linear`` and ``torch.randn`` draw from the process's global generator, so a probe built without care
starts from different weights on every run and an analysis's figure moves by several points between two
identical calls. Building a probe inside :func:`seeded` makes it a function of ``seed`` alone and leaves the
global generator as the caller had it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with the global torch generator seeded by ``seed``, then restore the caller's state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
