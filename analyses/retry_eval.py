"""Evaluating models pretrained on retry data (Part 2.2): accuracy per op, retries per problem, unnecessary steps.

A model trained with "Define X as [BACK]." sentences may write them itself: the verifier skips retracted
sentences and counts them, so the same greedy decoding as :mod:`analyses.reasoning_level` measures whether the
model learned to retract (retries > 0) without learning to make more mistakes (accuracy), and whether it still
avoids unnecessary parameters (level-1 reasoning).
"""
from __future__ import annotations

from dataclasses import dataclass

from analyses.registry import register
from analyses.shared.greedy_eval import greedy_records
from analyses.shared.igsm_inputs import check_positive, default_sets, igsm_task
from analyses.shared.plots import plot_by_op
from analyses.shared.records import RecordsResult


@dataclass
class RetryEvalResult(RecordsResult):
    """A retry-data model's accuracy, retries per problem and unnecessary work, per eval set and op.

    ``records``: one per (set, op) plus op = "all": n, acc, retries (per problem), unnecessary params/ops per correct.
    """

    def retries(self, set_name: str = "in") -> float:
        return self.record(set=set_name, op="all")["retries"]

    def plot(self):
        return plot_by_op(self.records, "set", "retry-data model: accuracy per op")


@register("retry_eval")
def retry_eval(model, task=None, n: int = 64, sets: tuple[str, ...] | None = None, max_new_tokens: int = 256,
               seed: int = 1234, progress: bool = True) -> RetryEvalResult:
    """Greedy solutions on held-out ``sets`` (default: in-distribution and the task's OOD ops), ``n`` each."""
    task = igsm_task(model, task)
    check_positive(n=n, max_new_tokens=max_new_tokens)
    sets = default_sets(task) if sets is None else sets
    records = greedy_records(model, task, n, sets, max_new_tokens, seed, progress, "retry_eval")
    return RetryEvalResult(records, {"n": n, "sets": list(sets), "seed": seed, "max_new_tokens": max_new_tokens,
                                     "task_retry": task.retry})
