"""Analyses: each a function ``(model, task=None, ...) -> result`` whose result has ``.table()``, ``.to_dict()``,
``.plot()`` and ``.save(dir)``. The task defaults to the one recorded in the model's config.

    >>> import analyses
    >>> analyses.names()                                  # doctest: +SKIP
    ['attention_boundary', 'generation', 'nt_probe', ...]
    >>> report = analyses.nt_probe(model)                 # doctest: +SKIP

Every module of this package is imported here and registers its analyses itself (:func:`registry.discover`);
``analyses.X`` is the *module* ``analyses/X.py``, and calling it runs the analysis ``X`` it defines. Shared
machinery lives in :mod:`analyses.shared`.
"""
from __future__ import annotations

import sys

from analyses import registry
from analyses._task import random_init_like, resolve_task
from analyses.registry import get, load_module, names, register, run
from analyses.result import AnalysisResult

registry.discover(sys.modules[__name__])

__all__ = ["AnalysisResult", "get", "load_module", "names", "random_init_like", "register", "resolve_task", "run"]
