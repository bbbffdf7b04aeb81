"""Finding and checking the task an analysis runs on."""
from __future__ import annotations

import tasks
from tasks.base import CFGAnalysisTask, IGSMAnalysisTask, missing_members

#: the part of the task contract the analyses of each kind rely on (tasks/base.py)
_CONTRACTS = {"cfg": CFGAnalysisTask, "igsm": IGSMAnalysisTask}


def resolve_task(model, task=None, kind: str | None = None):
    """``task`` if given (a Task or a spec dict), else the task recorded in ``model.cfg.task``.

    Refuses a task whose vocabulary does not fit the model, or of the wrong kind for the analysis.
    """
    if task is None:
        spec = getattr(model.cfg, "task", None)
        if spec is None:
            raise ValueError("the model records no task (model.cfg.task is None); pass task=... explicitly")
        task = tasks.from_spec(spec)
    elif isinstance(task, dict):
        task = tasks.from_spec(task)
    if kind is not None and getattr(task, "kind", None) != kind:
        raise ValueError(f"this analysis needs a {kind!r} task, got {getattr(task, 'kind', type(task).__name__)!r}")
    if kind in _CONTRACTS and (missing := missing_members(task, _CONTRACTS[kind])):
        raise TypeError(f"task {task!r} lacks {missing}, which the {kind} analyses use "
                        f"(tasks.base.{_CONTRACTS[kind].__name__})")
    if task.d_vocab > model.cfg.d_vocab:
        raise ValueError(f"task vocabulary ({task.d_vocab} ids) does not fit the model's d_vocab = {model.cfg.d_vocab}")
    return task


def random_init_like(model, seed: int = 12345):
    """The same architecture with fresh random weights: the paper's random-init control."""
    from plm_interp import HookedPLM

    return HookedPLM(model.cfg.replace(seed=seed)).to(model.W_E.device).eval()


def subjects(model, controls: bool, seed: int) -> dict:
    """``{"trained": model}`` plus, with ``controls``, the random-init control every probe analysis reports."""
    out = {"trained": model.eval()}
    if controls:
        out["random-init"] = random_init_like(model, seed=seed + 777)
    return out
