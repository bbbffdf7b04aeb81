"""The V-probe's queries (Part 2.1 §4.1, App. E): which (position, parameter) pairs are asked, and their true labels.

Queries are uniform: A (and B) drawn from all parameters, the solution-state position from ``<SOL>`` and the sentence
ends, so the majority guess is high (the paper: 55-95%) and every figure stands beside it. Positions are the
paper's: ``nece`` at the end of the question, ``dep`` at the end of the problem, ``known`` / ``value`` / ``can_next`` /
``nece_next`` at ``<SOL>`` or at the end of a solution sentence; ``value`` is asked for known parameters only.
The fitting itself lives in :mod:`plm_interp.probes.v_probe`; analyses build the queries here and present results.
"""
from __future__ import annotations

import random

import torch

from plm_interp.probes.v_probe import VExamples
from tasks.igsm import Problem, encode, probe_suffix, true_labels

PROBES = ("nece", "dep", "known", "value", "can_next", "nece_next")


def probe_examples(task, problems: list[Problem], probe: str, per_problem: int = 4, seed: int = 0,
                   balanced: bool = False) -> VExamples:
    """Up to ``per_problem`` random queries per problem (consecutive, so a split by rows is a split by problem),
    labelled from the true graph. With ``balanced`` a binary probe draws its label 50/50 first (when the problem
    has both), so accuracy is not dominated by the majority class (uniform queries are lopsided for some probes:
    docs/part2_analyses.md)."""
    if probe not in PROBES:
        raise ValueError(f"field 'probe' = {probe!r}: must be one of {PROBES}")
    tok, rng = task.tokenizer, random.Random(f"v_probe:{probe}:{seed}")
    pre, suf, lab = [], [], []
    for p in problems:
        lb = true_labels(p, tok)
        ids = encode(p, tok).ids
        cands = candidates(lb, probe)
        by_y: dict[int, list] = {}
        for c in cands:
            by_y.setdefault(c[1], []).append(c)
        for _ in range(per_problem):
            pool = by_y[rng.choice(sorted(by_y))] if balanced and probe != "value" else cands
            pos, y, a, b = rng.choice(pool)
            pre.append(ids[: pos + 1])
            suf.append(probe_suffix(p, tok, lb.params[a], None if b is None else lb.params[b]))
            lab.append(y)
    return VExamples(pre, suf, torch.tensor(lab, dtype=torch.long))


def candidates(lb, probe: str) -> list[tuple[int, int, int, int | None]]:
    """Every (position, label, A, B) query of one problem."""
    n = len(lb.params)
    if probe == "nece":
        return [(lb.pos_nece, int(lb.nece[a]), a, None) for a in range(n)]
    if probe == "dep":
        return [(lb.pos_dep, int(lb.dep[a, b]), a, b) for a in range(n) for b in range(n) if a != b]
    table = {"known": lb.known, "value": lb.value, "can_next": lb.can_next, "nece_next": lb.nece_next}[probe]
    return [(lb.pos_steps[t], int(table[t, a]), a, None) for t in range(len(lb.pos_steps)) for a in range(n)
            if probe != "value" or lb.known[t, a]]


def n_classes_of(task, probe: str) -> int:
    """Classes of a probe's label: the modulus for ``value``, 2 for the yes/no probes."""
    return task.config.modulus if probe == "value" else 2


def regret_examples(task, problems: list[Problem], per_problem: int = 4, seed: int = 0,
                    balanced: bool = False) -> VExamples:
    """The regret probe's queries (Part 2.2 §3.1): prefix = true solution up to sentence end t (or ``<SOL>``),
    suffix = "Define A as", label = can_next[t, A]; t and A uniform, ``balanced`` draws the label 50/50 first."""
    tok, rng = task.tokenizer, random.Random(f"regret:{seed}")
    define, as_ = tok.ids["Define"], tok.ids["as"]
    pre, suf, lab = [], [], []
    for p in problems:
        lb = true_labels(p, tok)
        ids = encode(p, tok).ids
        cands = [(t, a) for t in range(len(lb.pos_steps)) for a in range(len(lb.params))]
        by_y: dict[bool, list] = {}
        for c in cands:
            by_y.setdefault(bool(lb.can_next[c]), []).append(c)
        for _ in range(per_problem):
            t, a = rng.choice(by_y[rng.choice(sorted(by_y))] if balanced else cands)
            pre.append(ids[: lb.pos_steps[t] + 1])
            suf.append([define] + tok.encode(p.structure.param_name(lb.params[a])) + [as_])
            lab.append(int(lb.can_next[t, a]))
    return VExamples(pre, suf, torch.tensor(lab, dtype=torch.long))


def fit_regret_probe(model, task, problems: list[Problem], layer: int | None = None, per_problem: int = 4,
                     seed: int = 0, fit=None, progress: bool = False):
    """The regret probe (a ``can_next`` V-probe read at "as") fitted on ``problems``' true solutions: what
    ``regret_probe`` scores and ``retry_upon_regret`` decodes with."""
    from plm_interp.probes import VFit, fit_v_probe

    layer = model.cfg.n_layers if layer is None else layer
    return fit_v_probe(model, regret_examples(task, problems, per_problem, seed), layer, 2, fit=fit or VFit(),
                       seed=seed, progress=progress, desc="regret_probe")
