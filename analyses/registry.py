"""The analyses registry: ``@register("name")`` makes an analysis listable and runnable from the CLI.

A worked example — a new hooked analysis in a few lines (see docs/analyses.md)::

    import analyses
    from analyses.result import AnalysisResult
    from dataclasses import dataclass

    @dataclass
    class HeadNorms(AnalysisResult):
        norms: list[list[float]]
        def rows(self):
            return [{"layer": l, "head": h, "mean |z|": v} for l, r in enumerate(self.norms) for h, v in enumerate(r)]
        def plot(self):
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots(); ax.imshow(self.norms); return fig

    @analyses.register("head_norms")
    def head_norms(model, task=None, n: int = 16, seed: int = 0) -> HeadNorms:
        task = analyses.resolve_task(model, task)
        _, cache = model.run_with_cache(task.sample(n, seed=seed).tokens, names_filter=lambda k: k.endswith("hook_z"))
        return HeadNorms([cache["z", l].norm(dim=-1).mean((0, 1)).tolist() for l in range(model.cfg.n_layers)])

after which ``analyses.run("head_norms", model)`` and ``plm-interp analyze head_norms --model DIR`` work.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

_ANALYSES: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn(model, task=None, **options) -> AnalysisResult`` under ``name``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"analysis name {name!r} must be a Python identifier")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(fn).parameters)
        if params[:2] != ["model", "task"]:
            raise TypeError(f"analysis {name!r}: signature must start with (model, task, ...), got {params}")
        if name in _ANALYSES and _ANALYSES[name] is not fn:
            raise ValueError(f"analysis name {name!r} is already registered to {_ANALYSES[name].__module__}")
        _ANALYSES[name] = fn
        return fn

    return wrap


def names() -> list[str]:
    """The registered analysis names, sorted."""
    return sorted(_ANALYSES)


def get(name: str) -> Callable[..., Any]:
    """The analysis function registered as ``name``; a ValueError lists the known names otherwise."""
    if name not in _ANALYSES:
        raise ValueError(f"analysis {name!r} is not registered; known: {names()}")
    return _ANALYSES[name]


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse options the analysis does not take, naming them (before any model is loaded)."""
    params = set(inspect.signature(get(name)).parameters) - {"model", "task"}
    unknown = sorted(set(options) - params)
    if unknown:
        raise ValueError(f"analysis {name!r} has no option(s) {unknown}; options: {sorted(params)}")


def run(name: str, model, task=None, **options):
    """Run a registered analysis by name (options are checked against its signature first)."""
    check_options(name, options)
    return get(name)(model, task, **options)
