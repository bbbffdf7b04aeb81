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
    # room to grow into: ``k`` / ``v`` are prefixes of these buffers, so a step writes one position instead of
    # copying the whole cache (torch.cat per token makes decoding quadratic in length; docs/model.md)
    _k_room: torch.Tensor | None = field(default=None, repr=False, compare=False)
    _v_room: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def append(self, k: torch.Tensor | None, v: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        if k is not None:
            self.k, self._k_room = _extend(self.k, self._k_room, k)
        self.v, self._v_room = _extend(self.v, self._v_room, v)
        return self.k, self.v


def _extend(old: torch.Tensor | None, room: torch.Tensor | None, new: torch.Tensor):
    """``old`` followed by ``new`` along positions, written into ``room`` when ``old`` is its prefix and it fits
    (capacity doubles otherwise). Positions before ``old``'s end are never written, so views taken earlier
    (``cut_cache``) keep their values."""
    if old is None:
        return new, None
    if torch.is_grad_enabled() and (old.requires_grad or new.requires_grad):  # in-place writes would break backward
        return torch.cat([old, new], dim=1), None
    n, m = old.shape[1], new.shape[1]
    ours = room is not None and old.data_ptr() == room.data_ptr() and old.shape[0] == room.shape[0]
    if not ours or n + m > room.shape[1]:
        room = old.new_empty((old.shape[0], max(2 * n, n + m, 16), *old.shape[2:]))
        room[:, :n] = old
    room[:, n : n + m] = new
    return room[:, : n + m], room


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
