"""Analyses: each a function ``(model, task=None, ...) -> result`` whose result has ``.table()``, ``.to_dict()``,
``.plot()`` and ``.save(dir)``. The task defaults to the one recorded in the model's config.

    >>> import analyses
    >>> analyses.names()                                  # doctest: +SKIP
    ['attention_boundary', 'generation', 'nt_probe', ...]
    >>> report = analyses.nt_probe(model)                 # doctest: +SKIP
"""
from __future__ import annotations

import importlib

from analyses._task import random_init_like, resolve_task
from analyses.registry import get, names, register, run
from analyses.result import AnalysisResult

#: built-in analysis modules (each registers itself on import)
_MODULES = ("generation", "nt_probe", "attention_boundary", "robustness",
            "v_probe", "reasoning_level", "mistakes", "regret_probe", "retry_upon_regret", "retry_eval", "value_lookup",
            "letter_reuse")

for _m in _MODULES:
    try:
        _mod = importlib.import_module(f"analyses.{_m}")
    except ModuleNotFoundError as _exc:  # a module not written yet must not break the others
        if _exc.name != f"analyses.{_m}":
            raise
        continue
    if hasattr(_mod, _m):
        globals()[_m] = getattr(_mod, _m)

__all__ = ["AnalysisResult", "get", "names", "random_init_like", "register", "resolve_task", "run"]
