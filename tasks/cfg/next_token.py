"""The exact next-token distribution of every prefix, plus the entropy and KL helpers built on it.

Two DPs, both on the sparse layered chart and both in float64 log space:

1. *Inside*: ``log P(A =>* x[i:j])`` for every derivable span, and for every partial rule match (the first ``k``
   children of a rule derive ``x[i:j]``) -- computed by :func:`tasks.cfg.chart.build_chart`.
2. *Prefix ("start") DP*, top-down by level: ``S_l(A, i)`` = probability that the derivation generates ``x[:i]``
   and then a level-``l`` node labelled ``A`` starting at position ``i``. ``S_0(root, 0) = 1``; a level-``l+1``
   node ``C`` starts at ``i`` either as the first child of a node starting at ``i`` or as child ``k+1`` of a rule
   whose first ``k`` children derive ``x[j:i]``::

       S_{l+1}(C, i) = sum_{P, r: r_1 = C} S_l(P, i) p(r) + sum_{items (j, i, r, k), r_{k+1} = C} S_l(lhs r, j) p(r) in(item)

At the terminal level, ``S(t, n) = P(x[:n] t ...)``, and ``P(x = x[:n]) = in(root, 0, n)``, so
``P(next = t | x[:n]) = S(t, n) / Z`` and ``P(EOS | x[:n]) = in(root, 0, n) / Z`` with ``Z`` their sum.
"""
from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float

from tasks.cfg.chart import build_chart, expand, rule_tables
from tasks.cfg.grammar import Grammar
from tasks.cfg.parser import Strings, flatten


def _group_logsumexp(key: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(key, kind="stable")
    key, val = key[order], val[order]
    if not len(key):
        return key, val
    heads = np.nonzero(np.r_[True, key[1:] != key[:-1]])[0]
    mx = np.maximum.reduceat(val, heads)
    rep = np.repeat(mx, np.diff(np.r_[heads, len(val)]))
    return key[heads], mx + np.log(np.add.reduceat(np.exp(val - rep), heads))


def next_token_logprobs(g: Grammar, strings: Strings) -> list[Float[np.ndarray, "n_plus_1 n_out"]]:
    """Per string of length ``n``: ``logp[i, t] = log P(x_i = t | x[:i])`` for ``i = 0..n``.

    Columns ``0..T-1`` are the terminals, column ``T`` is EOS. Row ``i`` is the distribution after the prefix
    ``x[:i]`` (row 0: the first token; row ``n``: after the whole string). Rows after a prefix the grammar cannot
    produce are NaN.
    """
    tokens, offsets = flatten(g, strings)
    chart = build_chart(g, tokens, offsets, inside=True, keep_items=True)
    width = int(offsets[-1] + len(offsets))
    n_t = g.n_terminals
    # S_0: the root starts at each string's first position, probability 1.
    s_key, s_val = chart.base.copy(), np.zeros(len(chart.base))            # key = pos * n_sym + sym
    for lvl, rt in enumerate(rule_tables(g)):
        n_par, n_child = len(g.names[lvl]), len(g.names[lvl + 1])
        pos, par = s_key // n_par, s_key % n_par
        # (a) first child of a node that starts here
        row, within = expand(rt.lhs_ptr[par + 1] - rt.lhs_ptr[par])
        r = rt.lhs_ptr[par[row]] + within
        keys = [pos[row] * n_child + rt.rhs[r, 0]]
        vals = [s_val[row] + rt.logp[r]]
        # (b) child k+1 after a partial match of the first k children spanning [j, i)
        for k, it in enumerate(chart.items[lvl][:2], start=1):
            part = np.nonzero(rt.length[it.rule] > k)[0]
            q = it.start[part] * n_par + rt.lhs[it.rule[part]]
            j = np.searchsorted(s_key, q)
            hit = j < len(s_key)
            hit[hit] = s_key[j[hit]] == q[hit]
            part, j = part[hit], j[hit]
            keys.append(it.end[part] * n_child + rt.rhs[it.rule[part], k])
            vals.append(s_val[j] + rt.logp[it.rule[part]] + it.login[part])
        s_key, s_val = _group_logsumexp(np.concatenate(keys), np.concatenate(vals))
    table = np.full((width, n_t + 1), -np.inf)
    table[s_key // n_t, s_key % n_t] = s_val
    root = chart.spans[0]
    from_start = np.isin(root.start, chart.base)
    table[root.end[from_start], n_t] = root.login[from_start]
    with np.errstate(invalid="ignore"):
        mx = table.max(axis=1, keepdims=True)
        z = mx + np.log(np.exp(table - mx).sum(axis=1, keepdims=True))
        table = table - z
    return [table[b: b + n + 1] for b, n in zip(chart.base, chart.lengths)]


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def entropy_bits(logp: Float[np.ndarray, "n_plus_1 n_out"], tokens=None) -> float:
    """Entropy in bits of one string under the grammar, from its next-token table (EOS included).

    ``-sum_i log2 P(x_i | x[:i]) - log2 P(EOS | x)``: the surprisal of the true tokens plus the final EOS. Needs
    the string's ``tokens`` (terminal ids); the table alone does not say which outcome happened.
    """
    if tokens is None:
        raise ValueError("entropy_bits needs tokens= (the string's terminal ids)")
    tokens = np.asarray(tokens)
    logp = _as_numpy(logp)
    if logp.shape[0] != len(tokens) + 1:
        raise ValueError(f"logp has {logp.shape[0]} rows but tokens has {len(tokens)} entries (need n + 1 rows)")
    nats = -logp[np.arange(len(tokens)), tokens].sum() - logp[len(tokens), -1]
    return float(nats / np.log(2))


def kl_to_truth(model_probs, truth_logp, eps: float = 1e-5) -> float:
    """KL(truth || model), natural log, averaged over positions, both sides smoothed with ``eps`` (PAPERS).

    ``model_probs[i, :]``: the model's probabilities over the same outcomes as ``truth_logp`` (terminals then EOS,
    tensor or array, rows summing to 1). Smoothing: ``q = (q + eps) / (1 + eps * n_out)`` on each side, so a zero
    in either distribution keeps the KL finite.
    """
    q = _as_numpy(model_probs)
    p = np.exp(_as_numpy(truth_logp))
    if q.shape != p.shape:
        raise ValueError(f"model_probs has shape {q.shape}, truth_logp has {p.shape}; they must match")
    if not np.all(np.isfinite(p)):
        raise ValueError("truth_logp has NaN rows (a prefix outside the language); drop those positions first")
    n_out = p.shape[-1]
    p = (p + eps) / (1 + eps * n_out)
    q = (q + eps) / (1 + eps * n_out)
    return float((p * (np.log(p) - np.log(q))).sum(-1).mean())


def position_entropy_bits(probs) -> np.ndarray:
    """Shannon entropy (bits) of each row of a next-token distribution (tensor or array of probabilities)."""
    p = _as_numpy(probs)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -(np.where(p > 0, p * np.log2(p), 0.0)).sum(-1)
