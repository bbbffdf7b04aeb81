"""Key/value cache for incremental decoding.

Keys are stored *after* the positional scheme touched them (rotated for rot), and positions are absolute, so
every scheme computes the same scores with or without the cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class KVCacheEntry:
    k: torch.Tensor | None = None  # [batch, pos, head, d_head]; None for schemes without keys
    v: torch.Tensor | None = None

    def append(self, k: torch.Tensor | None, v: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        if k is not None:
            self.k = k if self.k is None else torch.cat([self.k, k], dim=1)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=1)
        return self.k, self.v


@dataclass
class KVCache:
    """Per-layer cached keys/values for incremental decoding (``KVCache.empty(n_layers)`` to start one)."""
    entries: list[KVCacheEntry] = field(default_factory=list)

    @classmethod
    def empty(cls, n_layers: int) -> "KVCache":
        """A cache with one empty entry per layer, to pass as ``past_kv_cache`` on the first forward pass."""
        return cls([KVCacheEntry() for _ in range(n_layers)])

    @property
    def length(self) -> int:
        """Number of positions already processed (the absolute position of the next token)."""
        v = self.entries[0].v if self.entries else None
        return 0 if v is None else v.shape[1]
