"""Membership, one parse tree per string (in the sampler's label format), and exact parse counts.

All three read the sparse layered chart of :mod:`tasks.cfg.chart`, built for a whole batch at once.

>>> from tasks.cfg import load_builtin
>>> from tasks.cfg.sampler import sample
>>> g = load_builtin("demo")
>>> batch = sample(g, 3, seed=0)
>>> accepts(g, batch).tolist(), accepts(g, [[0, 0]]).tolist()
([True, True, True], [False])
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
from jaxtyping import Bool

from tasks.cfg.chart import build_chart, expand
from tasks.cfg.grammar import Grammar
from tasks.cfg.labels import LabelledBatch, Labels
from tasks.cfg.sampler import _labels

Strings = Union[LabelledBatch, Sequence[Union[Sequence[int], np.ndarray]], np.ndarray]  # a batch, or a list of strings


def flatten(g: Grammar, strings: Strings) -> tuple[np.ndarray, np.ndarray]:
    """Validate strings of terminal ids and return ``(tokens, offsets)`` (CSR); errors name string and position."""
    if isinstance(strings, LabelledBatch):
        return strings.tokens, strings.offsets
    if isinstance(strings, np.ndarray) and strings.dtype != object and strings.ndim != 2:
        raise ValueError(f"strings must be a batch: a list of token sequences or a 2-d array [batch, pos]; got a "
                         f"{strings.ndim}-d array; wrap a single string in a list")
    if not isinstance(strings, np.ndarray) and len(strings) and _is_scalar(strings[0]):
        raise ValueError(f"strings must be a batch (a list of token sequences); got a flat sequence starting with "
                         f"{strings[0]!r}; wrap a single string in a list")
    seqs = [_int_ids(s, k) for k, s in enumerate(strings)]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    tokens = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
    bad = np.nonzero((tokens < 0) | (tokens >= g.n_terminals))[0]
    if len(bad):
        k = int(np.searchsorted(np.cumsum(lengths), bad[0], "right"))
        raise ValueError(f"strings[{k}] holds token {int(tokens[bad[0]])}, not a terminal id of grammar "
                         f"{g.name!r} (valid: 0..{g.n_terminals - 1})")
    return tokens, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _is_scalar(x) -> bool:
    return isinstance(x, (int, float, bool, np.generic)) or getattr(x, "ndim", None) == 0   # 0-d array/tensor


def _int_ids(s, k: int) -> np.ndarray:
    """String ``k`` as int64 ids; floats and bools are refused rather than truncated (0.9 is not terminal 0)."""
    a = np.asarray(s)
    if a.ndim != 1:
        raise ValueError(f"strings[{k}] must be a 1-d sequence of token ids, got shape {a.shape}")
    if a.size and (a.dtype == bool or not np.issubdtype(a.dtype, np.integer)):
        bad = next((x for x in s if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer))), a[0])
        raise ValueError(f"strings[{k}] holds {bad!r} ({type(bad).__name__}); token ids must be integers")
    return a.astype(np.int64, copy=False)


def accepts(g: Grammar, strings: Strings, chunk: int = 2048) -> Bool[np.ndarray, " batch"]:
    """Whether each string is in the language (empty strings never are)."""
    tokens, offsets = flatten(g, strings)
    out = []
    for a in range(0, len(offsets) - 1, chunk):
        sub = offsets[a: a + chunk + 1]
        chart = build_chart(g, tokens[sub[0]: sub[-1]], sub - sub[0])
        out.append(chart.root_spans() >= 0)
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def count_parses(g: Grammar, strings: Strings) -> list[int]:
    """The exact number of parse trees of each string (0 outside the language), as Python ints."""
    tokens, offsets = flatten(g, strings)
    chart = build_chart(g, tokens, offsets, counts=True)
    root = chart.root_spans()
    return [int(chart.spans[0].count[r]) if r >= 0 else 0 for r in root]


def parse(g: Grammar, strings: Strings) -> list[Labels | None]:
    """One parse tree per string as :class:`~tasks.cfg.labels.Labels` (``None`` outside the language).

    For an unambiguous string this is *the* tree, so the labels equal the sampler's.
    """
    tokens, offsets = flatten(g, strings)
    chart = build_chart(g, tokens, offsets, keep_items=True)
    root = chart.root_spans()
    ok = np.nonzero(root >= 0)[0]
    out: list[Labels | None] = [None] * (len(offsets) - 1)
    if not len(ok):
        return out
    nodes = root[ok]
    syms, parents = [np.zeros(len(ok), dtype=np.int64)], []
    for lvl in range(g.depth):
        sp, steps = chart.spans[lvl], chart.items[lvl]
        code = sp.item[nodes]
        k, i = code // sp.item_base, code % sp.item_base
        row, within = expand(k + 1)
        ck, ci = k[row], i[row]
        back = k[row] - within                 # how many steps to walk back to reach this child
        for _ in range(2):
            move = back > 0
            for kk in (1, 2):
                m = move & (ck == kk)
                ci[m] = steps[kk].prev[ci[m]]
            ck = ck - move
            back = back - move
        child = np.empty(len(row), dtype=np.int64)
        for kk in range(3):
            m = ck == kk
            child[m] = steps[kk].span[ci[m]]
        nodes = child
        syms.append(chart.spans[lvl + 1].sym[nodes])
        parents.append(row)
    lab = _labels(g, syms, parents, len(ok))
    for j, k in enumerate(ok):
        out[k] = lab[j]
    return out
