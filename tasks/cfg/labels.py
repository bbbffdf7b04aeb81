"""Per-token structure labels (the probes' targets), shared by the sampler and the parser.

For token ``i`` and NT level ``l`` (0 = root ... ``depth - 1`` = the parents of terminals; the paper's NT_{l+1}):

- ``s[i, l]``: the symbol index (within level ``l``) of token ``i``'s level-``l`` ancestor;
- ``p[i, l]``: which level-``l`` subtree of the string that ancestor is, counted from the left from 0;
- ``b[i, l]``: the NT-end bit, true iff token ``i`` is the last token of its level-``l`` subtree;
- ``b_sharp[i]``: the highest (smallest-index) level whose subtree ends at ``i``, or -1 if none does. ``b[i, l]``
  implies ``b[i, l']`` for every deeper ``l'``, so this single number carries all NT-end bits of the token.

Labels are kept *flat* over the tokens of a whole batch, with ``offsets`` delimiting strings (CSR layout), because
the sampler produces them level by level for a whole batch at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Int


def b_sharp_of(b: np.ndarray) -> np.ndarray:
    """``b_sharp`` from NT-end bits ``b[n, depth]``."""
    any_end = b.any(axis=1)
    return np.where(any_end, b.argmax(axis=1), -1)


@dataclass
class Labels:
    """Labels of one string: ``tokens[n]`` (terminal ids) and ``s, p, b [n, depth]``."""

    tokens: Int[np.ndarray, " n"]
    s: Int[np.ndarray, "n depth"]
    p: Int[np.ndarray, "n depth"]
    b: Bool[np.ndarray, "n depth"]

    @property
    def b_sharp(self) -> Int[np.ndarray, " n"]:
        """Per token, the highest level whose subtree ends there, or -1 (see :func:`b_sharp_of`)."""
        return b_sharp_of(self.b)

    def __len__(self) -> int:
        return len(self.tokens)

    def equals(self, other: "Labels") -> bool:
        """Whether every label array equals ``other``'s; ``==`` cannot say, as the dataclass would compare numpy
        arrays elementwise."""
        return all(np.array_equal(getattr(self, f), getattr(other, f)) for f in ("tokens", "s", "p", "b"))


@dataclass
class LabelledBatch:
    """Many strings with their labels, flat over tokens: string ``k`` is ``tokens[offsets[k]:offsets[k+1]]``."""

    tokens: Int[np.ndarray, " n_tok"]
    offsets: Int[np.ndarray, " batch_plus_1"]
    s: Int[np.ndarray, "n_tok depth"]
    p: Int[np.ndarray, "n_tok depth"]
    b: Bool[np.ndarray, "n_tok depth"]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> Int[np.ndarray, " batch"]:
        """Number of tokens of each string."""
        return np.diff(self.offsets)

    @property
    def b_sharp(self) -> Int[np.ndarray, " n_tok"]:
        """Per token, the highest level whose subtree ends there, or -1 (see :func:`b_sharp_of`)."""
        return b_sharp_of(self.b)

    def strings(self) -> list[np.ndarray]:
        """The token arrays, one per string."""
        return np.split(self.tokens, self.offsets[1:-1])

    def __getitem__(self, k: int) -> Labels:
        if not -len(self) <= k < len(self):
            raise IndexError(f"string index {k} out of range for a batch of {len(self)}")
        k %= len(self)
        a, z = self.offsets[k], self.offsets[k + 1]
        return Labels(self.tokens[a:z], self.s[a:z], self.p[a:z], self.b[a:z])
