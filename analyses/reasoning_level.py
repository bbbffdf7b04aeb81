"""Level-0 vs level-1 reasoning (Part 2.1): accuracy per op and unnecessary work per correct solution.

A level-0 reasoner computes every parameter it can (brute force); a level-1 reasoner computes only the ones the
query needs, which needs the "nece" planning before writing. The paper's model writes 0.00 unnecessary
operations per correct solution. Solutions are decoded greedily from the prompt (ids up to ``<SOL>``) and
checked step by step by :func:`tasks.igsm.verify`; ``reask`` problems ask about another parameter of the same
problem, so a model that memorised "the usual query" would fail there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyses._igsm_common import check_positive, eval_problems, greedy_generate, igsm_task, op_rows, tally_by_op, \
    verify_ids
from analyses.registry import register
from analyses.result import AnalysisResult


@dataclass
class ReasoningLevelResult(AnalysisResult):
    """Accuracy and unnecessary parameters/operations per correct solution, per eval set and op."""
    #: one record per (set, op) plus op = "all": n, acc, unnecessary_params / _ops per correct solution, retries
    records: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return self.records

    def accuracy(self, set_name: str = "in", op: int | str = "all") -> float:
        return next(r["acc"] for r in self.records if r["set"] == set_name and r["op"] == op)

    def plot(self):
        return plot_by_op(self.records, "set", "reasoning level: accuracy per op")


def plot_by_op(records, key: str, title: str):
    """Accuracy per op, one line per value of ``key`` (shared by the Part 2 generation analyses)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name in dict.fromkeys(r[key] for r in records):
        rs = [r for r in records if r[key] == name and r["op"] != "all"]
        ax.plot([r["op"] for r in rs], [100 * r["acc"] for r in rs], "o-", label=str(name))
    ax.set_xlabel("op")
    ax.set_ylabel("accuracy %")
    ax.set_ylim(-3, 103)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@register("reasoning_level")
def reasoning_level(model, task=None, n: int = 64, sets: tuple[str, ...] = ("in", "reask"), max_new_tokens: int = 256,
                    seed: int = 1234, progress: bool = True) -> ReasoningLevelResult:
    """Greedy solutions on the held-out ``sets`` (``"in"``: op <= op_max; ``"reask"``; ``"op=k"``), ``n`` each."""
    task = igsm_task(model, task)
    check_positive(n=n, max_new_tokens=max_new_tokens)
    problems = eval_problems(task, n, sets, seed)
    records = []
    for name, ps in problems.items():
        ids = greedy_generate(model, ps, task.tokenizer, max_new_tokens, progress, desc=f"reasoning_level {name}")
        reps = [verify_ids(p, task.tokenizer, x) for p, x in zip(ps, ids)]
        records += op_rows({"set": name}, tally_by_op(ps, reps))
    return ReasoningLevelResult(records, {"n": n, "sets": list(sets), "seed": seed, "max_new_tokens": max_new_tokens})
