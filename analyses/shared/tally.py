"""Per-op counts of verified solutions: accuracy, unnecessary work per correct solution, retries, first errors."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tasks.igsm import Problem, VerifyReport


@dataclass
class Tally:
    """Running per-op counts of a set of verified generations."""

    n: int = 0
    correct: int = 0
    unnecessary_params: int = 0
    unnecessary_ops: int = 0
    defined: int = 0
    retries: int = 0
    #: kind of the first error of each wrong solution (``tasks.igsm.verify``'s ``error_kind``), e.g. reusing a
    #: letter is a naming slip where ``unknown_param`` / ``not_ready`` are planning errors
    errors: Counter = field(default_factory=Counter)

    def add(self, rep: VerifyReport) -> None:
        self.n += 1
        self.retries += rep.n_retracted
        if not rep.correct:
            self.errors[rep.error_kind] += 1
        if rep.correct:
            self.correct += 1
            self.unnecessary_params += len(rep.unnecessary_params)
            self.unnecessary_ops += rep.unnecessary_ops
            self.defined += len(rep.accepted)

    def row(self) -> dict[str, Any]:
        c = max(self.correct, 1)
        return {"n": self.n, "acc": self.correct / self.n if self.n else float("nan"),
                "unnecessary_params": self.unnecessary_params / c if self.correct else float("nan"),
                "unnecessary_ops": self.unnecessary_ops / c if self.correct else float("nan"),
                "retries": self.retries / self.n if self.n else float("nan"),
                "first_errors": dict(self.errors.most_common())}


def tally_by_op(problems: list[Problem], reports: list[VerifyReport]) -> dict[int | str, Tally]:
    """Tallies per op and over all (key ``"all"``)."""
    out: dict[int | str, Tally] = defaultdict(Tally)
    for p, r in zip(problems, reports):
        out[p.op].add(r)
        out["all"].add(r)
    return dict(out)


def op_rows(prefix: dict[str, Any], tallies: dict[int | str, Tally]) -> list[dict[str, Any]]:
    """One record per op (ascending) then ``"all"``, each starting with ``prefix`` (e.g. the eval set)."""
    keys = sorted((k for k in tallies if k != "all"), key=int) + (["all"] if "all" in tallies else [])
    return [{**prefix, "op": k, **tallies[k].row()} for k in keys]
