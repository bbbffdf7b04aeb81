"""The layers import downward only: library <- tasks <- analyses <- app (docs/architecture.md).

The library (``plm_interp``) imports neither ``tasks``, ``analyses`` nor the app (``plm_app``); ``tasks`` imports
only the library; ``analyses`` imports the library and ``tasks``; only ``plm_app`` joins them all. (``plm_interp.app``
is the app's deprecated alias: it names ``plm_app`` only as a string and is checked on its own below.) Checked twice: at run time in a fresh interpreter (what importing a layer
actually loads, lazy imports included when they run at import time) and statically (every ``import`` statement in
every file, also those inside functions, which run later). And no import circle: no two modules of the
project reach each other through imports (``scripts/import_graph.py`` draws the graph; the same script prints
the counts: floors, arrows back up, circles).
"""
from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


IG = _import_graph()

#: layer -> the top-level names its files must not import
FORBIDDEN = {
    "library": ("tasks", "analyses", "plm_app"),
    "tasks": ("analyses", "plm_app"),
    "analyses": ("plm_app",),
}


#: layer -> its package folder
PACKAGE = {"library": "plm_interp", "tasks": "tasks", "analyses": "analyses", "app": "plm_app"}
#: the app's deprecated alias (``plm_interp.app`` -> ``plm_app``), not part of the library
ALIAS = ROOT / "plm_interp" / "app"


def layer_files(layer: str) -> list[Path]:
    return sorted(p for p in (ROOT / PACKAGE[layer]).rglob("*.py") if ALIAS not in p.parents)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in the file; relative imports resolved against its package."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out += [(node.lineno, f"{base}.{a.name}" if base else a.name) for a in node.names]
    return out


def violates(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_file_imports_a_higher_layer(layer):
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}" for p in layer_files(layer)
           for line, name in imported_names(p) if violates(name, FORBIDDEN[layer])]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_static_check_sees_a_lazy_upward_import(tmp_path):
    # the checker itself: an import hidden inside a function is still found
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from analyses.registry import run\n    import tasks.cfg\n")
    names = [n for _, n in imported_names(f)]
    assert names == ["analyses.registry.run", "tasks.cfg"]
    assert all(violates(n, FORBIDDEN["library"]) for n in names)


_PROBE = """
import importlib, json, sys
mods = json.loads(sys.argv[1])
for m in mods:
    importlib.import_module(m)
print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in ('tasks', 'analyses', 'plm_app')
                        or n == 'plm_interp.app' or n.startswith('plm_interp.app.'))))
"""


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_importing_a_layer_loads_no_higher_layer(layer):
    """Import every module of the layer in one fresh interpreter; if all of them together load no higher layer,
    none of them does on its own."""
    modules = [module_name(p) for p in layer_files(layer) if p.name != "__main__.py"]
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(modules)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    bad = [n for n in loaded if violates(n, FORBIDDEN[layer] + ("plm_interp.app",))]
    assert not bad, f"importing the {layer} layer loaded {bad}"
    assert len(modules) > 5


def test_the_app_is_the_layer_that_joins_them():
    # the CLI's own modules do reach every layer (so the rule above is not vacuous)
    names = {n for p in layer_files("app") for _, n in imported_names(p)}
    assert any(violates(n, ("tasks",)) for n in names) and any(violates(n, ("analyses",)) for n in names)


def test_the_old_app_path_is_an_alias_that_imports_nothing_of_the_project():
    """``plm_interp.app`` (where the app lived) still imports, and ``python -m plm_interp.app.cli`` still runs:
    each ``plm_interp.app.X`` is the module ``plm_app.X`` itself, and importing the alias warns. Statically it
    imports only the standard library, so the library's folder holds no arrow up."""
    names = [n for p in ALIAS.rglob("*.py") for _, n in imported_names(p)]
    assert names and not [n for n in names if n.split(".")[0] in ("plm_interp", "tasks", "analyses", "plm_app")]
    check = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
             "try:\n    import plm_interp.app\nexcept DeprecationWarning as w:\n    assert 'plm_app' in str(w)\n"
             "else:\n    raise SystemExit('no warning')\n")
    out = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    same = ("import warnings; warnings.simplefilter('ignore')\n"
            "import plm_interp.app.cli as old, plm_app.cli as new\n"
            "from plm_interp.app import runconfig\nfrom plm_interp.app.experiments.scales import toml_value\n"
            "import plm_app.runconfig, plm_app.experiments.scales as scales\n"
            "assert old is new and runconfig is plm_app.runconfig and toml_value is scales.toml_value\n"
            "assert old.__spec__.name == 'plm_app.cli'\n")
    out = subprocess.run([sys.executable, "-c", same], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    out = subprocess.run([sys.executable, "-W", "ignore", "-m", "plm_interp.app.cli", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage: plm-interp" in out.stdout, out.stderr[-2000:]


#: what an analysis may import of the analyses package: its machinery, never another analysis
ANALYSIS_SUPPORT = ("analyses.shared", "analyses.registry", "analyses.result", "analyses._task", "analyses.display")


def test_every_analysis_is_a_leaf():
    """No analysis imports another (retry_upon_regret once stood on regret_probe on v_probe): shared machinery lives
    in analyses/shared/ or in the library (the probes in plm_interp/probes/), so each analysis reads top to bottom."""
    modules = {p.stem for p in (ROOT / "analyses").glob("*.py") if not p.stem.startswith("_")} - {
        "registry", "result", "display"}
    found = []
    for path in sorted((ROOT / "analyses").glob("*.py")):
        for line, name in imported_names(path):
            if name.startswith("analyses.") and not violates(name, ANALYSIS_SUPPORT):
                if name.split(".")[1] in modules:
                    found.append(f"{path.name}:{line} imports {name}")
    assert not found, found
    assert "v_probe" in modules and "nt_probe" in modules   # the check sees the analyses it guards


# -- circles and floors ---------------------------------------------------------------------------------------

def test_no_import_circle_between_modules():
    """No two modules reach each other through imports, counting those inside functions and under
    ``TYPE_CHECKING``: a circle held together by a lazy import still ties both modules to each other (each can
    be neither understood nor tested alone), and reorders into an ImportError when someone hoists the import."""
    graph = IG.module_graph(ROOT)
    assert len(graph) > 100 and set(IG.packages(ROOT)) == {"plm_interp", "tasks", "analyses", "plm_app"}
    circles = IG.circles(graph)
    assert not circles, "import circles:\n" + "\n".join(
        " <-> ".join(c) + "\n    " + "\n    ".join(f"{a}:{graph[a][b]} imports {b}" for a in c for b in graph[a]
                                                 if b in c) for c in circles)


def test_the_folders_stand_on_four_floors_with_no_arrow_back_up():
    """What the folders show: plm_app -> analyses -> tasks -> plm_interp, and no module of a lower package imports
    a higher one (the deprecated alias plm_interp.app names plm_app only as a string)."""
    graph = IG.module_graph(ROOT)
    assert IG.arrows_back_up(graph) == []
    assert IG.floors(IG.package_graph(graph)) == (4, ["plm_app", "analyses", "tasks", "plm_interp"])


def _plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_circle_check_sees_a_planted_circle(tmp_path):
    # the checker itself: a circle closed by an import inside a function, and one through a package's __init__
    _plant(tmp_path, {
        "pkg/__init__.py": "from pkg.c import C\n",
        "pkg/a.py": "import pkg.b\n",
        "pkg/b.py": "def f():\n    from pkg.a import thing\n",
        "pkg/c.py": "from pkg import VERSION\nfrom pkg import helper\nC = 1\n",
        "pkg/helper.py": "from . import d\n",
        "pkg/d.py": "X = 1\n",
    })
    graph = IG.module_graph(tmp_path, ["pkg"])
    # a name imported from a package is an edge to the package, a module imported from it an edge to the module
    assert graph["pkg.c"] == {"pkg": 1, "pkg.helper": 2} and graph["pkg.helper"] == {"pkg.d": 1}
    assert graph["pkg.b"] == {"pkg.a": 2}
    assert IG.circles(graph) == [["pkg", "pkg.c"], ["pkg.a", "pkg.b"]]
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    return 1\n")
    (tmp_path / "pkg" / "c.py").write_text("C = 1\n")
    assert IG.circles(IG.module_graph(tmp_path, ["pkg"])) == []


def test_the_floor_count_sees_a_planted_arrow_back_up(tmp_path):
    _plant(tmp_path, {
        "plm_interp/__init__.py": "", "plm_interp/core.py": "def f():\n    import analyses.x\n",
        "tasks/__init__.py": "import plm_interp.core\n",
        "analyses/__init__.py": "", "analyses/x.py": "import tasks\n",
    })
    graph = IG.module_graph(tmp_path, ["plm_interp", "tasks", "analyses"])
    assert IG.arrows_back_up(graph) == ["plm_interp.core:2 -> analyses.x"]
    assert IG.circles(graph) == [["analyses.x", "plm_interp.core", "tasks"]]
