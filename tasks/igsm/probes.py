"""Probe labels at the paper's positions (Part 2.1 V-probing), from the true graph or along a model's solution.

* ``dep[a, b]``  (does a depend, transitively, on b) — read at the end of the problem statement;
* ``nece[a]``    (is a necessary for the query)     — read at the end of the question;
* ``known[t, a]``, ``value[t, a]`` (``modulus`` when unknown), ``can_next[t, a]`` (not known, every parent
  known), ``nece_next[t, a]`` (can_next and necessary) — row 0 is read at ``<SOL>`` (before any sentence), row
  t >= 1 at the period ending the t-th accepted solution sentence.

Parameters are indexed by ``labels.params`` (every instance and abstract parameter, sorted). A probe reads the
model state at a position and appends ``[START] A [END]`` (or ``[START] A [MID] B [END]``): see
:func:`probe_suffix`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Int

from tasks.igsm.generator import Problem
from tasks.igsm.sequence import encode
from tasks.igsm.structure import Param
from tasks.igsm.tokenizer import Tokenizer
from tasks.igsm.verifier import verify


@dataclass
class ProbeLabels:
    """Ground truth for the V-probes of one problem: per-parameter labels and the token positions they are probed at."""
    params: list[Param]
    dep: Bool[np.ndarray, "a b"]
    nece: Bool[np.ndarray, " a"]
    known: Bool[np.ndarray, "step a"]
    value: Int[np.ndarray, "step a"]
    can_next: Bool[np.ndarray, "step a"]
    nece_next: Bool[np.ndarray, "step a"]
    pos_dep: int
    pos_nece: int
    pos_steps: list[int]


def _state_labels(problem: Problem, order: list[Param], params: list[Param]):
    g = problem.graph
    idx = {a: t for t, a in enumerate(params)}
    n, T = len(params), len(order) + 1
    known = np.zeros((T, n), bool)
    value = np.full((T, n), g.modulus, np.int64)
    can = np.zeros((T, n), bool)
    nece = np.zeros(n, bool)
    nece[[idx[a] for a in g.order]] = True
    parents = [[idx[p] for p in g.parents(a)] for a in params]
    for t in range(T):
        if t:
            known[t] = known[t - 1]
            value[t] = value[t - 1]
            a = idx[order[t - 1]]
            known[t, a] = True
            value[t, a] = g.values[order[t - 1]]
        kt = known[t]
        can[t] = [not kt[a] and all(kt[p] for p in parents[a]) for a in range(n)]
    return nece, known, value, can, can & nece[None, :]


def _dep(problem: Problem, params: list[Param]) -> np.ndarray:
    g = problem.graph
    idx = {a: t for t, a in enumerate(params)}
    dep = np.zeros((len(params), len(params)), bool)
    for a in g.topo:  # topological: parents' rows are complete before a's
        for p in g.parents(a):
            dep[idx[a], idx[p]] = True
            dep[idx[a]] |= dep[idx[p]]
    return dep


def true_labels(problem: Problem, tok: Tokenizer) -> ProbeLabels:
    """Labels along the problem's own shortest solution, with positions in :func:`sequence.encode`'s ids."""
    e = encode(problem, tok)
    params = sorted(problem.graph.topo)
    nece, known, value, can, nn = _state_labels(problem, [s.param for s in problem.steps], params)
    return ProbeLabels(params, _dep(problem, params), nece, known, value, can, nn, e.end_problem, e.end_question,
                       [e.sol] + e.sentence_ends)


def labels_along(problem: Problem, tok: Tokenizer, ids: list[int]) -> ProbeLabels:
    """Labels along a model-written sequence ``ids`` (prompt + generated solution), up to its first error.

    Retracted sentences get no row; rows stop before the first wrong sentence.
    """
    ids = [int(t) for t in ids]
    if tok.sol not in ids:
        raise ValueError("labels_along: field 'ids' has no <SOL> token")
    sol = ids.index(tok.sol)
    words = [tok.vocab[t] for t in ids]
    pos_nece = words.index("?")
    pos_dep = max(p for p in range(sol) if words[p] == ".")
    stop = ids.index(tok.ans) if tok.ans in ids[sol:] else len(ids)
    periods = [p for p in range(sol + 1, stop) if words[p] == "."]
    rep = verify(problem, words[sol + 1 : stop])
    acc = rep.accepted
    params = sorted(problem.graph.topo)
    nece, known, value, can, nn = _state_labels(problem, [s.param for s in acc], params)
    return ProbeLabels(params, _dep(problem, params), nece, known, value, can, nn, pos_dep, pos_nece,
                       [sol] + [periods[s.index] for s in acc])


def probe_suffix(problem: Problem, tok: Tokenizer, a: Param, b: Param | None = None) -> list[int]:
    """Token ids of ``[START] A [END]`` or ``[START] A [MID] B [END]`` (names as the solution writes them)."""
    st = problem.structure
    mid = [tok.mid] + tok.encode(st.param_name(b)) if b is not None else []
    return [tok.start] + tok.encode(st.param_name(a)) + mid + [tok.end]
