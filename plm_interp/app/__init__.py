"""Deprecated alias of :mod:`plm_app` (the application moved out of the library into its own package).

``import plm_interp.app.cli``, ``from plm_interp.app import runconfig`` and ``python -m plm_interp.app.cli`` keep
working: each ``plm_interp.app.X`` name is the module ``plm_app.X`` itself (the same object, not a copy), found by
a finder this module installs. Importing it warns once (``DeprecationWarning``). The alias names ``plm_app`` only
as a string, so the library itself imports nothing of the application (docs/architecture.md).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

OLD, NEW = __name__, "plm_app"

warnings.warn(f"{OLD} is deprecated: import {NEW} instead (the same modules; see the changelog in README.md)",
              DeprecationWarning, stacklevel=2)


class _AliasLoader(importlib.abc.Loader):
    """Loads ``plm_interp.app.X`` as the already imported ``plm_app.X``; ``get_code`` serves ``python -m``."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._spec = module.__spec__  # the import machinery overwrites __spec__ with the alias's: put it back
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec

    def get_code(self, fullname: str) -> Any:
        spec = importlib.util.find_spec(self.target)
        return spec.loader.get_code(self.target)


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(OLD + "."):
            return None
        real = NEW + fullname[len(OLD):]
        spec = importlib.util.find_spec(real)
        if spec is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(real), origin=spec.origin,
                                               is_package=spec.submodule_search_locations is not None)


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())

__path__: list[str] = []  # a package, so that its submodule names are looked up (by the finder above)


def __getattr__(name: str) -> ModuleType:
    # ``plm_interp.app.cli`` as an attribute, before anything imported it
    try:
        return importlib.import_module(f"{OLD}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {OLD!r} has no attribute {name!r}") from None
