"""Part 2.2 retry data: solutions with retracted wrong steps "Define <param> as [BACK]."

Before each solution sentence, with probability ``p`` a retracted sentence is inserted, and again with
probability ``p`` (so k insertions with probability p^k (1-p)). Which parameter the wrong sentence names depends on
``mode`` and on ``rule``. With ``rule="paper"`` (the default; Part 2.2 §4 and §6, see PAPERS.md "Retry data"):

* ``"perfect"`` (the paper's retry data): a parameter that cannot be computed next (some parent not yet
  computed) and is not yet mentioned in the solution, i.e. neither computed nor already retracted;
* ``"weak"`` (retry_weak): the parameter of a later solution sentence (no semantics needed);
* ``"miss"`` (retry_miss): a parameter that appears in the problem statement (a stated parameter, one named in a
  stated sentence, or the queried one) and not yet in the solution, other than the one about to be defined.

``rule="v1"`` is this library's first retry data, kept because models were trained on it (the shipped
``igsm-small-retry`` and the Part 2.2 CPU experiments measured before this rule existed): ``"perfect"`` may name a
parameter it has already retracted, and ``"miss"`` draws from every parameter of the dependency graph not yet
computed (abstract ones included, which the problem never names). ``"weak"`` is the same under both rules. A task
spec written before the rule existed reads back as ``"v1"`` (:meth:`tasks.igsm.IGSMTask.from_spec`).

If no parameter qualifies at some position, nothing is inserted there.
"""
from __future__ import annotations

import random

from tasks.igsm.generator import Problem
from tasks.igsm.solution import Step

RETRY_MODES = ("perfect", "weak", "miss")
#: how the wrong parameter is chosen: the paper's rule, or this library's first one (see the module doc)
RETRY_RULES = ("paper", "v1")


def stated_params(problem: Problem) -> set:
    """Every parameter the problem text names: the stated (instance) parameters, the parameters their sentences
    depend on, and the queried one."""
    g = problem.graph
    out = set(g.formulas) | {problem.query}
    for f in g.formulas.values():
        out.update(f.parents)
    return out


def with_retries(problem: Problem, rng: random.Random, p: float, mode: str = "perfect",
                 rule: str = "paper") -> list[Step]:
    """The problem's solution steps with retracted steps (``Step.back = True``) inserted (see module doc)."""
    if mode not in RETRY_MODES:
        raise ValueError(f"retry field 'mode' = {mode!r}: must be one of {RETRY_MODES}")
    if rule not in RETRY_RULES:
        raise ValueError(f"retry field 'rule' = {rule!r}: must be one of {RETRY_RULES}")
    if not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"retry field 'p' = {p!r}: must be a number in [0, 1)")
    g = problem.graph
    every = sorted(g.topo)
    stated = sorted(stated_params(problem)) if rule == "paper" and mode == "miss" else None
    known: set = set()
    mentioned: set = set()  # computed or retracted so far (the paper's "appearing in the solution")
    out: list[Step] = []
    for t, step in enumerate(problem.steps):
        while p > 0 and rng.random() < p:
            if mode == "weak":
                cands = [s.param for s in problem.steps[t + 1 :]]
            elif rule == "v1":
                if mode == "perfect":
                    cands = [a for a in every if a not in known and not all(x in known for x in g.parents(a))]
                else:
                    cands = [a for a in every if a not in known and a != step.param]
            elif mode == "perfect":
                cands = [a for a in every if a not in mentioned and not all(x in known for x in g.parents(a))]
            else:
                cands = [a for a in stated if a not in mentioned and a != step.param]
            if not cands:
                break
            wrong = cands[rng.randrange(len(cands))]
            mentioned.add(wrong)
            out.append(Step(wrong, None, back=True))
        out.append(step)
        known.add(step.param)
        mentioned.add(step.param)
    return out
