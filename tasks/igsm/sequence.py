"""Token sequences for training and probing, with the positions the paper's probes read.

A training sequence is ``<BOS> problem question <SOL> solution <ANS> answer <EOS>`` (``qp``: question first).
The loss mask (``loss_mask[p]`` = whether predicting token p counts) covers the solution, the ``<ANS>``, the
answer and ``<EOS>`` by default (``loss_on="solution"``), or every token after ``<BOS>`` (``"all"``). With
``mask_retry`` the wrong parameter-name tokens of retracted sentences are left out of the loss (the paper found
this unnecessary; off by default).
"""
from __future__ import annotations

from dataclasses import dataclass

from tasks.igsm import text
from tasks.igsm.generator import Problem
from tasks.igsm.solution import Step
from tasks.igsm.tokenizer import Tokenizer

LOSS_ON = ("solution", "all")


@dataclass
class Encoded:
    """Token ids plus masks and probe positions (all indices into ``ids``).

    ``end_problem``: the period ending the problem statement (dep probes); ``end_question``: the "?" (nece
    probes); ``sol``: ``<SOL>``; ``sentence_ends``: the period ending each solution sentence, retracted ones
    included; ``retracted``: whether each sentence is a "[BACK]" one; ``retry_tokens``: the wrong name tokens.
    """

    ids: list[int]
    loss_mask: list[bool]
    end_problem: int
    end_question: int
    sol: int
    sentence_ends: list[int]
    retracted: list[bool]
    retry_tokens: list[int]
    ans: int


def encode(
    problem: Problem, tok: Tokenizer, steps: list[Step] | None = None, loss_on: str = "solution",
    mask_retry: bool = False,
) -> Encoded:
    """Encode ``problem`` with its solution ``steps`` (default: the shortest solution)."""
    if loss_on not in LOSS_ON:
        raise ValueError(f"encode field 'loss_on' = {loss_on!r}: must be one of {LOSS_ON}")
    steps = problem.steps if steps is None else steps
    st = problem.structure
    enc = tok.encode
    ids = [tok.bos]
    q_ids = enc(problem.question())
    body: list[int] = []
    for s in problem.problem_sentences():
        body += enc(s + ".")
    if problem.fmt == "pq":
        ids += body
        end_problem = len(ids) - 1
        ids += q_ids
        end_question = len(ids) - 1
    else:
        ids += q_ids
        end_question = len(ids) - 1
        ids += body
        end_problem = len(ids) - 1
    sol = len(ids)
    ids.append(tok.sol)
    ends, retracted, retry_tokens = [], [], []
    for s in steps:
        start = len(ids)
        ids += enc(text.step_sentence(st, s) + ".")
        ends.append(len(ids) - 1)
        retracted.append(s.back)
        if s.back:  # "Define <name> as [BACK] ." -> the name tokens
            retry_tokens += range(start + 1, len(ids) - 3)
    ans = len(ids)
    ids.append(tok.ans)
    ids += enc(str(problem.answer))
    ids.append(tok.eos)
    first = 1 if loss_on == "all" else sol + 1
    mask = [False] * first + [True] * (len(ids) - first)
    if mask_retry:
        for p in retry_tokens:
            mask[p] = False
    return Encoded(ids, mask, end_problem, end_question, sol, ends, retracted, retry_tokens, ans)


def prompt_ids(problem: Problem, tok: Tokenizer) -> list[int]:
    """The prompt a model completes at evaluation: everything up to and including ``<SOL>``."""
    e = encode(problem, tok)
    return e.ids[: e.sol + 1]
