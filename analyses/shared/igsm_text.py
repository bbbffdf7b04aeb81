"""Reading a generated iGSM solution as token ids: its sentences, the parameter a sentence names, its verdict."""
from __future__ import annotations

from typing import Any

from tasks.igsm import Problem, VerifyReport, verify


def solution_words(tok, ids: list[int]) -> list[str]:
    """The words after ``<SOL>`` (what :func:`tasks.igsm.verify` reads)."""
    sol = ids.index(tok.sol)
    return [tok.vocab[t] for t in ids[sol + 1 :]]


def verify_ids(problem: Problem, tok, ids: list[int]) -> VerifyReport:
    """The verifier's step-by-step report on the solution in ``ids``."""
    return verify(problem, solution_words(tok, ids))


def sentence_spans(tok, ids: list[int]) -> list[tuple[int, int]]:
    """``(start, end)`` of each written solution sentence (end = its period), in the verifier's numbering."""
    sol = ids.index(tok.sol)
    stop = ids.index(tok.ans, sol) if tok.ans in ids[sol:] else len(ids)
    period = tok.ids["."]
    spans, start = [], sol + 1
    for p in range(sol + 1, stop):
        if ids[p] == period:
            spans.append((start, p))
            start = p + 1
    if start < stop:
        spans.append((start, stop - 1))  # unterminated last sentence
    return spans


def param_names(problem: Problem, tok) -> dict[tuple[int, ...], Any]:
    """Token ids of each parameter's name -> the parameter (to read "Define <name> as")."""
    st = problem.structure
    return {tuple(tok.encode(st.param_name(a))): a for a in problem.graph.topo}
