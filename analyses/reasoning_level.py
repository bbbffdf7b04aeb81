"""Level-0 vs level-1 reasoning (Part 2.1): accuracy per op and unnecessary work per correct solution.

A level-0 reasoner computes every parameter it can (brute force); a level-1 reasoner computes only the ones the
query needs, which needs the "nece" planning before writing. The paper's model writes 0.00 unnecessary
operations per correct solution. Solutions are decoded greedily from the prompt (ids up to ``<SOL>``) and
checked step by step by :func:`tasks.igsm.verify`; ``reask`` problems ask about another parameter of the same
problem, so a model that memorised "the usual query" would fail there.
"""
from __future__ import annotations

from dataclasses import dataclass

from analyses.registry import register
from analyses.shared.greedy_eval import greedy_records
from analyses.shared.igsm_inputs import check_positive, igsm_task
from analyses.shared.plots import plot_by_op
from analyses.shared.records import RecordsResult

__all__ = ["ReasoningLevelResult", "plot_by_op", "reasoning_level"]


@dataclass
class ReasoningLevelResult(RecordsResult):
    """Accuracy and unnecessary parameters/operations per correct solution, per eval set and op.

    ``records``: one per (set, op) plus op = "all": n, acc, unnecessary_params / _ops per correct solution, retries.
    """

    def accuracy(self, set_name: str = "in", op: int | str = "all") -> float:
        return self.record(set=set_name, op=op)["acc"]

    def plot(self):
        return plot_by_op(self.records, "set", "reasoning level: accuracy per op")


@register("reasoning_level")
def reasoning_level(model, task=None, n: int = 64, sets: tuple[str, ...] = ("in", "reask"), max_new_tokens: int = 256,
                    seed: int = 1234, progress: bool = True) -> ReasoningLevelResult:
    """Greedy solutions on the held-out ``sets`` (``"in"``: op <= op_max; ``"reask"``; ``"op=k"``), ``n`` each."""
    task = igsm_task(model, task)
    check_positive(n=n, max_new_tokens=max_new_tokens)
    records = greedy_records(model, task, n, sets, max_new_tokens, seed, progress, "reasoning_level")
    return ReasoningLevelResult(records, {"n": n, "sets": list(sets), "seed": seed, "max_new_tokens": max_new_tokens})
