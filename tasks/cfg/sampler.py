"""Annotated sampling, vectorised level by level over a whole batch.

Instead of expanding one tree at a time (the authors' recursive sampler), all nodes of one level of all trees are
expanded together with a few numpy gathers: choose a rule per node uniformly, repeat each node by its rule length,
read the children from a padded rule table. Each node remembers its parent's index, so after the terminal level
the ancestor of every token at every level is a chain of gathers, and the labels of :mod:`tasks.cfg.labels` fall
out as array comparisons. Nodes stay ordered by (string, left-to-right position) at every level, which makes
``p`` a subtraction and ``b`` a comparison with the next token.
"""
from __future__ import annotations

import numpy as np

from tasks.cfg.grammar import Grammar
from tasks.cfg.labels import LabelledBatch


def _check(n: int, seed) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"sample size n must be a non-negative int; got {n!r}")
    if seed is not None and not isinstance(seed, (int, np.integer, np.random.Generator)):
        raise ValueError(f"seed must be an int, a numpy Generator or None; got {seed!r}")


def sample(grammar: Grammar, n: int, seed: "int | np.random.Generator | None" = 0) -> LabelledBatch:
    """Sample ``n`` strings with all labels; the same seed gives the same batch.

    >>> from tasks.cfg import load_builtin
    >>> batch = sample(load_builtin("demo"), 4, seed=0)
    >>> len(batch), batch.s.shape[1]
    (4, 4)
    """
    _check(n, seed)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    sym = np.zeros(n, dtype=np.int32)           # symbols of the current level's nodes
    syms, parents = [sym], []
    for rhs, rule_len, n_rules in _flat_tables(grammar):
        r = (rng.random(len(sym)) * n_rules[sym]).astype(np.int32)
        key = sym * rule_len.shape[1] + r        # (symbol, rule) -> row of the flat tables
        ln = rule_len.ravel()[key]
        parent = np.repeat(np.arange(len(sym), dtype=np.int32), ln)
        starts = np.cumsum(ln) - ln
        slot = np.arange(len(parent), dtype=np.int32) - np.repeat(starts, ln).astype(np.int32)
        sym = rhs.reshape(-1, rhs.shape[-1])[key[parent], slot]
        syms.append(sym)
        parents.append(parent)
    return _labels(grammar, syms, parents, n)


def _flat_tables(grammar: Grammar):
    cache = grammar.__dict__.setdefault("_sampler_tables", [])
    if not cache:
        for rhs, rule_len, n_rules in grammar.tables:
            cache.append((rhs.astype(np.int32), rule_len.astype(np.int32), n_rules.astype(np.float64)))
    return cache


def _labels(grammar: Grammar, syms: list, parents: list, n: int) -> LabelledBatch:
    depth = grammar.depth
    tokens = syms[-1]
    n_tok = len(tokens)
    s = np.empty((n_tok, depth), dtype=np.int32)
    p = np.empty((n_tok, depth), dtype=np.int32)
    b = np.empty((n_tok, depth), dtype=bool)
    anc = np.arange(n_tok, dtype=np.int32)
    # Node index of the first node of each string, per level: strings are contiguous and in order.
    for lvl in range(depth - 1, -1, -1):
        anc = parents[lvl][anc]
        s[:, lvl] = syms[lvl][anc]
        b[:-1, lvl] = anc[1:] != anc[:-1]
        b[-1:, lvl] = True
        if lvl == 0:
            string = anc
        p[:, lvl] = anc
    # p: subtract the index of the first level-l node of the token's string (string = root node index).
    first_tok = np.searchsorted(string, np.arange(n + 1))
    offsets = first_tok.astype(np.int64)
    firsts = p[first_tok[:-1][np.diff(first_tok) > 0]]           # per non-empty string: its first token's ancestors
    p -= np.repeat(firsts, np.diff(first_tok)[np.diff(first_tok) > 0], axis=0)
    return LabelledBatch(tokens=tokens.astype(np.int64), offsets=offsets, s=s, p=p, b=b)
