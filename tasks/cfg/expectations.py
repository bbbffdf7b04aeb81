"""Exact expectations of a grammar by recursion over levels (no sampling).

Under uniform rule choice, a symbol's expected yield length is the mean over its rules of the sum of its
children's expected lengths, and its derivation entropy is ``log2(#rules)`` (the choice made at this node) plus
the mean over rules of the children's entropies (children are derived independently). Both recursions run from
the terminals (length 1, entropy 0) up to the root. These are the "mean length" and "derivation entropy" columns of
the PAPERS table.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from tasks.cfg.grammar import Grammar


def expected_length(g: Grammar, exact: bool = False) -> "float | Fraction":
    """Expected number of tokens of a sampled string (a :class:`Fraction` with ``exact=True``)."""
    one = Fraction(1) if exact else 1.0
    cur = [one] * g.n_terminals
    for lvl in reversed(g.rules):
        cur = [sum((sum((cur[c] for c in r), 0 * one) for r in rs), 0 * one) / len(rs) for rs in lvl]
    return cur[0]


def derivation_entropy_bits(g: Grammar) -> float:
    """Entropy (bits) of the derivation tree of a sampled string; an upper bound on the string's entropy."""
    cur = np.zeros(g.n_terminals)
    for lvl in reversed(g.rules):
        cur = np.array([np.log2(len(rs)) + np.mean([cur[list(r)].sum() for r in rs]) for rs in lvl])
    return float(cur[0])


def length_variance(g: Grammar) -> float:
    """Variance of the string length (for sampling-error bounds in tests and docs)."""
    mean = np.ones(g.n_terminals)
    sq = np.ones(g.n_terminals)        # E[L^2]
    for lvl in reversed(g.rules):
        m_new, s_new = [], []
        for rs in lvl:
            ms, ss = [], []
            for r in rs:
                m = mean[list(r)]
                ms.append(m.sum())
                # E[(sum L_c)^2] = sum Var(L_c) + (sum E L_c)^2 with independent children
                ss.append((sq[list(r)] - m ** 2).sum() + m.sum() ** 2)
            m_new.append(np.mean(ms))
            s_new.append(np.mean(ss))
        mean, sq = np.array(m_new), np.array(s_new)
    return float(sq[0] - mean[0] ** 2)
