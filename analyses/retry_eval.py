"""Evaluating models pretrained on retry data (Part 2.2): accuracy per op, retries per problem, unnecessary steps.

A model trained with "Define X as [BACK]." sentences may write them itself: the verifier skips retracted
sentences and counts them, so the same greedy decoding as :mod:`analyses.reasoning_level` measures whether the
model learned to retract (retries > 0) without learning to make more mistakes (accuracy), and whether it still
avoids unnecessary parameters (level-1 reasoning).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyses._igsm_common import check_positive, eval_problems, greedy_generate, igsm_task, op_rows, tally_by_op, \
    verify_ids
from analyses.reasoning_level import plot_by_op
from analyses.registry import register
from analyses.result import AnalysisResult


@dataclass
class RetryEvalResult(AnalysisResult):
    """A retry-data model's accuracy, retries per problem and unnecessary work, per eval set and op."""
    #: one record per (set, op) plus op = "all": n, acc, retries (per problem), unnecessary params/ops per correct
    records: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return self.records

    def retries(self, set_name: str = "in") -> float:
        return next(r["retries"] for r in self.records if r["set"] == set_name and r["op"] == "all")

    def plot(self):
        return plot_by_op(self.records, "set", "retry-data model: accuracy per op")


@register("retry_eval")
def retry_eval(model, task=None, n: int = 64, sets: tuple[str, ...] | None = None, max_new_tokens: int = 256,
               seed: int = 1234, progress: bool = True) -> RetryEvalResult:
    """Greedy solutions on held-out ``sets`` (default: in-distribution and the task's OOD ops), ``n`` each."""
    task = igsm_task(model, task)
    check_positive(n=n, max_new_tokens=max_new_tokens)
    if sets is None:
        from tasks.igsm.task import OOD_OPS

        sets = ("in",) + tuple(f"op={k}" for k in OOD_OPS[task.preset])
    problems = eval_problems(task, n, sets, seed)
    records = []
    for name, ps in problems.items():
        ids = greedy_generate(model, ps, task.tokenizer, max_new_tokens, progress, desc=f"retry_eval {name}")
        reps = [verify_ids(p, task.tokenizer, x) for p, x in zip(ps, ids)]
        records += op_rows({"set": name}, tally_by_op(ps, reps))
    return RetryEvalResult(records, {"n": n, "sets": list(sets), "seed": seed, "max_new_tokens": max_new_tokens,
                                     "task_retry": task.retry})
