"""The API reference (scripts/api_docs.sh, pdoc) builds a page for every public module, and the public API is
documented: every function/class a package exports in ``__all__``, every registered analysis and its result
type, and every public module has a docstring. An undocumented export fails here, naming it."""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pdoc")

import analyses  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("plm_interp", "tasks", "analyses", "plm_app")


def public_modules() -> list[str]:
    names = []
    for top in PACKAGES:
        pkg = importlib.import_module(top)
        names += [top] + [m.name for m in pkgutil.walk_packages(pkg.__path__, top + ".")]
    return [n for n in names if not any(part.startswith("_") for part in n.split("."))]


def exports():
    """``(package, name, object)`` for every name in a public package's ``__all__`` (the public surface)."""
    for name in public_modules():
        mod = importlib.import_module(name)
        if hasattr(mod, "__path__"):  # packages define the public surface through __all__
            yield from ((name, attr, getattr(mod, attr)) for attr in getattr(mod, "__all__", []))


def own_doc(obj) -> str:
    """The object's own docstring; a dataclass's generated ``Name(field: type, ...)`` does not count."""
    doc = (obj.__doc__ or "").strip()
    return "" if inspect.isclass(obj) and doc.startswith(obj.__name__ + "(") else doc


def test_api_docs_script_writes_a_page_per_public_module(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    subprocess.run(["bash", str(ROOT / "scripts" / "api_docs.sh"), str(tmp_path / "api")], check=True, env=env,
                   capture_output=True, text=True, timeout=300)
    missing = [m for m in public_modules() if not (tmp_path / "api" / (m.replace(".", "/") + ".html")).is_file()]
    assert not missing, f"no API page for {missing}"
    assert (tmp_path / "api" / "index.html").is_file()
    page = (tmp_path / "api" / "plm_interp.html").read_text()
    assert "HookedPLM" in page and "preset_config" in page


def test_every_public_module_has_a_docstring():
    assert [m for m in public_modules() if not (importlib.import_module(m).__doc__ or "").strip()] == []


def test_every_export_has_a_docstring():
    undocumented = [f"{name}.{attr}" for name, attr, obj in exports()
                    if (inspect.isclass(obj) or inspect.isfunction(obj)) and not own_doc(obj)]
    assert undocumented == [], f"exported without a docstring: {undocumented}"


def test_every_public_method_of_an_export_has_a_docstring():
    """Methods, static/class methods and properties an exported class defines itself (inherited ones are
    checked on the class that defines them, when it is exported)."""
    undocumented = set()
    for _, _, cls in exports():
        if not inspect.isclass(cls):
            continue
        for key, member in vars(cls).items():
            fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if not key.startswith("_") and inspect.isfunction(fn) and not own_doc(fn):
                undocumented.add(f"{cls.__module__}.{cls.__qualname__}.{key}")
    assert not undocumented, f"public methods without a docstring: {sorted(undocumented)}"


def test_every_analysis_and_its_result_type_has_a_docstring():
    undocumented = []
    for name in analyses.names():
        fn = analyses.get(name)
        if not (fn.__module__ or "").startswith("analyses."):  # registered by another test (the registry's examples)
            continue
        result = inspect.signature(fn).return_annotation
        result = getattr(sys.modules[fn.__module__], result) if isinstance(result, str) else result
        undocumented += [f"{obj.__module__}.{obj.__name__}" for obj in (fn, result) if not own_doc(obj)]
    assert analyses.names() and undocumented == [], f"undocumented: {undocumented}"
