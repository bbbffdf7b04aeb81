"""What a Part 2 (iGSM) analysis needs before it starts: the task, checked against the model; its sizes; its
held-out problem sets."""
from __future__ import annotations

from typing import Any, Iterable

from analyses._task import resolve_task
from analyses.shared.checks import check_nonempty
from analyses.shared.checks import check_positive  # noqa: F401  (re-exported: analyses import it from here)
from tasks.igsm import Problem


def igsm_task(model, task=None):
    """The iGSM task for ``model``, refusing a model whose vocabulary lacks the task's special tokens."""
    task = resolve_task(model, task, kind="igsm")
    tok = task.tokenizer
    need = {"[START]": tok.start, "[MID]": tok.mid, "[END]": tok.end, "[BACK]": tok.back, "<SOL>": tok.sol,
            "<EOS>": tok.eos}
    missing = [w for w, i in need.items() if i >= model.cfg.d_vocab]
    if missing:
        raise ValueError(f"the model's vocabulary (d_vocab = {model.cfg.d_vocab}) lacks the task's special tokens "
                         f"{missing}; was it trained on this iGSM task?")
    return task


def eval_problems(task, n: int, sets: Iterable[str], seed: int) -> dict[str, list[Problem]]:
    """The named held-out sets (``"in"`` = op <= op_max, ``"reask"``, ``"op=k"``) from ``task.eval_sets``."""
    sets = list(sets)
    check_nonempty(sets=sets)
    all_sets = task.eval_sets(n, seed=seed)
    alias = {"in": f"op<={task.config.op_max}"}
    out = {}
    for s in sets:
        key = alias.get(s, s)
        if key not in all_sets:
            raise ValueError(f"field 'sets' has {s!r}: known sets are {['in'] + sorted(all_sets)}")
        out[s] = all_sets[key]
    return out


def default_sets(task) -> tuple[str, ...]:
    """In-distribution plus the task's out-of-distribution ops (the paper's eval sets)."""
    from tasks.igsm.task import OOD_OPS

    return ("in",) + tuple(f"op={k}" for k in OOD_OPS[task.preset])
