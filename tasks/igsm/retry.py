"""Part 2.2 retry data: solutions with retracted wrong steps "Define <param> as [BACK]."

Before each solution sentence, with probability ``p`` a retracted sentence is inserted, and again with
probability ``p`` (so k insertions with probability p^k (1-p)). Which parameter the wrong sentence names:

* ``"perfect"`` (the paper's retry data): a parameter that cannot be computed yet (some parent unknown);
* ``"weak"`` (retry_weak): the parameter of a later solution sentence (no semantics needed);
* ``"miss"`` (retry_miss): any parameter not defined yet, other than the one about to be defined.

If no parameter qualifies at some position, nothing is inserted there.
"""
from __future__ import annotations

import random

from tasks.igsm.generator import Problem
from tasks.igsm.solution import Step

RETRY_MODES = ("perfect", "weak", "miss")


def with_retries(problem: Problem, rng: random.Random, p: float, mode: str = "perfect") -> list[Step]:
    """The problem's solution steps with retracted steps (``Step.back = True``) inserted (see module doc)."""
    if mode not in RETRY_MODES:
        raise ValueError(f"retry field 'mode' = {mode!r}: must be one of {RETRY_MODES}")
    if not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"retry field 'p' = {p!r}: must be a number in [0, 1)")
    g = problem.graph
    every = sorted(g.topo)
    known: set = set()
    out: list[Step] = []
    for t, step in enumerate(problem.steps):
        while p > 0 and rng.random() < p:
            if mode == "perfect":
                cands = [a for a in every if a not in known and not all(x in known for x in g.parents(a))]
            elif mode == "weak":
                cands = [s.param for s in problem.steps[t + 1 :]]
            else:
                cands = [a for a in every if a not in known and a != step.param]
            if not cands:
                break
            out.append(Step(cands[rng.randrange(len(cands))], None, back=True))
        out.append(step)
        known.add(step.param)
    return out
