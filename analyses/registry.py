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

after which ``analyses.run("head_norms", model)`` works, and from the shell ``plm-interp analyze head_norms
--import my_module --model DIR`` (or an entry point in the group ``plm_interp.analyses``).

Discovery has one rule: an analysis is whatever ``@register`` has seen. The built-ins are found by importing
every module of the ``analyses`` package (:func:`discover`; a new file is found without being listed anywhere),
a user's by ``--import`` or by the entry points of installed distributions.
"""
from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import pkgutil
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable

_ANALYSES: dict[str, Callable[..., Any]] = {}
#: the entry-point group through which an installed distribution adds analyses (the value names a module)
ENTRY_POINT_GROUP = "plm_interp.analyses"
#: option names that take layer indices, ``"all"``, or ``None``; a string other than "all" is refused here
_LAYER_OPTIONS = ("layer", "layers")


_depth: list[str] = []  # the registered analyses running now, outermost first


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn(model, task=None, **options) -> AnalysisResult`` under ``name``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"analysis name {name!r} must be a Python identifier")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(fn).parameters)
        if params[:2] != ["model", "task"]:
            raise TypeError(f"analysis {name!r}: signature must start with (model, task, ...), got {params}")
        if name in _ANALYSES and getattr(_ANALYSES[name], "__wrapped__", None) is not fn:
            raise ValueError(f"analysis name {name!r} is already registered to {_ANALYSES[name].__module__}")

        @functools.wraps(fn)
        def on_free_cores(*args: Any, **kwargs: Any) -> Any:
            """Every analysis runs with torch threads from the free cores (plm_interp.runtime): beside another
            busy job, one thread per core would make each call several times slower (docs/analyses.md)."""
            if _depth:  # an analysis inside another keeps the outer call's threads
                return fn(*args, **kwargs)
            from plm_interp.runtime import torch_threads

            _depth.append(name)
            try:
                with torch_threads():
                    return fn(*args, **kwargs)
            finally:
                _depth.pop()

        _ANALYSES[name] = on_free_cores
        return on_free_cores

    return wrap


def names() -> list[str]:
    """The registered analysis names, sorted."""
    return sorted(_ANALYSES)


def get(name: str) -> Callable[..., Any]:
    """The analysis function registered as ``name``; a ValueError lists the known names otherwise."""
    if name not in _ANALYSES:
        raise ValueError(f"analysis {name!r} is not registered; known: {names()}")
    return _ANALYSES[name]


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Refuse options the analysis does not take, or of the wrong type, naming the option and the value (before
    any model is loaded). Returns the options converted where that is lossless (a list for a tuple)."""
    from plm_interp.validation import check_types

    fn = get(name)
    params = set(inspect.signature(fn).parameters) - {"model", "task"}
    unknown = sorted(set(options) - params)
    if unknown:
        raise ValueError(f"analysis {name!r} has no option(s) {unknown}; options: {sorted(params)}")
    options = {k: _layer_option(name, k, v) for k, v in options.items()}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # annotations this process cannot evaluate (a user's module): names are checked, not types
        return options
    signature = type(f"{name}_options", (), {"__annotations__": {k: v for k, v in hints.items() if k in params}})
    return check_types(signature, options, f"analysis {name!r} option")


def _layer_option(analysis: str, key: str, value: Any) -> Any:
    """``layers="ALL"`` means all layers; any other word was read letter by letter before, so it is refused."""
    if key not in _LAYER_OPTIONS or not isinstance(value, str):
        return value
    if value.strip().lower() != "all":
        raise ValueError(f"analysis {analysis!r} option {key} = {value!r}: give a layer index, a list of "
                         f"indices, or 'all'")
    return "all"


def run(name: str, model, task=None, **options):
    """Run a registered analysis by name (options are checked against its signature first)."""
    options = check_options(name, options)
    return get(name)(model, task, **options)


# ---- discovery ---------------------------------------------------------------------------------------------


class AnalysisModule(types.ModuleType):
    """A module that holds the analysis of its own name, and calls it when called.

    Why: ``analyses.v_probe`` has to be the module (so ``import analyses.v_probe as m`` and ``m.fit_v_probe``
    work, and a test can patch it), while ``analyses.v_probe(model)`` keeps running the analysis.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        """The analysis's signature, so ``inspect.signature(analyses.nt_probe)`` and Jupyter's ``?`` show it."""
        return inspect.signature(getattr(self, self.__name__.rpartition(".")[2]))


def _make_callable(module: types.ModuleType) -> None:
    """``analyses.X(...)`` runs the analysis ``X`` only when the module ``X`` registers a function named ``X``; any
    other module stays a plain module (calling it would have nothing to call)."""
    short = module.__name__.rpartition(".")[2]
    fn = getattr(module, short, None)
    if fn is not None and _ANALYSES.get(short) is fn and type(module) is types.ModuleType:
        module.__class__ = AnalysisModule


def discover(package: types.ModuleType) -> list[str]:
    """Import every module of ``package`` (not its subpackages: those hold shared code), so that each
    ``@register`` runs, then the entry points of :data:`ENTRY_POINT_GROUP`. Returns the modules imported."""
    done = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        _make_callable(module)
        done.append(module.__name__)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
        done.append(ep.value)
    return done


def load_module(ref: str) -> types.ModuleType:
    """Import a user's analysis module: a dotted name (looked up from the current directory too) or a ``.py``
    file path. Its ``@register`` calls add its analyses."""
    path = Path(ref)
    if path.suffix == ".py":
        if not path.is_file():
            raise FileNotFoundError(f"--import {ref!r}: no such file")
        name = f"_plm_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(ref)
    except ModuleNotFoundError as exc:
        if exc.name and ref.startswith(exc.name):
            raise ValueError(f"--import {ref!r}: no module of that name on the path (nor in {Path.cwd()})") from exc
        raise
