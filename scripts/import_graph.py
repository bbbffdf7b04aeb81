"""The shape of the code, read from its import statements: floors, arrows back up, import circles, largest files.

    python scripts/import_graph.py            # the counts, as text
    python scripts/import_graph.py --json     # the same as JSON

Why a script: docs/architecture.md promises four floors (library and tasks at the bottom, analyses above them, the
app above all), nothing pointing up and no import circle. These figures say how far the code is from that, and the
same command gives them before and after a change. ``tests/test_architecture.py`` uses :func:`module_graph` and
:func:`circles` to keep them at zero.

What is counted:

* the import packages are those ``pyproject.toml`` ships (``[tool.setuptools.packages.find] include``);
* every ``import`` / ``from ... import`` statement of every file counts, also those inside functions and under
  ``if TYPE_CHECKING:`` (they run later, or only for a type checker, but they still tie two modules together);
  ``from a.b import c`` is an edge to the module ``a.b.c`` when there is one, else to ``a.b``;
* **floors**: the most top-level packages one chain of downward imports passes through (``LAYERS``, lowest first);
* **arrows back up**: import statements from a lower layer to a higher one, by folder (a module's top-level
  package) and by layer (an app inside ``plm_interp/`` counted as the app);
* **circles**: groups of modules that reach each other through imports (strongly connected components of more
  than one module);
* **duplicate pairs**: pairs of functions of at least ``MIN_DUPLICATE_LINES`` lines whose bodies are at least
  ``DUPLICATE_SIMILARITY`` alike as sequences of syntax nodes, local names renamed (1.0: the same code up to them).
"""
from __future__ import annotations

import argparse
import ast
import copy
import difflib
import itertools
import json
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: the layers, lowest first, each as the module prefixes that belong to it (the longest matching prefix wins, so
#: the app inside ``plm_interp`` counts as the app while it lives there)
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("library", ("plm_interp",)),
    ("tasks", ("tasks",)),
    ("analyses", ("analyses",)),
    ("app", ("plm_interp.app", "plm_app")),
)

MIN_DUPLICATE_LINES = 6
DUPLICATE_SIMILARITY = 0.8


def packages(root: Path = ROOT) -> list[str]:
    """The top-level import packages ``pyproject.toml`` ships."""
    include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    names = sorted({pattern.rstrip("*").rstrip(".") for pattern in include})
    return [n for n in names if (root / n / "__init__.py").exists()]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files(root: Path, package_names: list[str]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of the packages."""
    return {module_name(p, root): p for pkg in package_names for p in sorted((root / pkg).rglob("*.py"))}


def imported_names(path: Path, module: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in the file, also inside functions; relative imports resolved
    against the module's package."""
    out = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out += [(node.lineno, f"{base}.{a.name}" if base else a.name) for a in node.names]
    return out


def resolve(name: str, modules: set[str]) -> str | None:
    """The module a dotted import name lands in: the longest prefix of it that is a module, or None (outside)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return None


def module_graph(root: Path = ROOT, package_names: list[str] | None = None) -> dict[str, dict[str, int]]:
    """module -> {imported module: first line of the import}, inside the packages only (no self edges)."""
    files = module_files(root, package_names if package_names is not None else packages(root))
    names = set(files)
    graph: dict[str, dict[str, int]] = {m: {} for m in files}
    for module, path in files.items():
        for line, name in imported_names(path, module):
            target = resolve(name, names)
            if target is not None and target != module:
                graph[module].setdefault(target, line)
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = itertools.count()
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = next(counter)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = next(counter)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return sorted(out, key=lambda c: (-len(c), c))


def layer_of(module: str) -> int:
    """Index into :data:`LAYERS` (the longest matching prefix), or -1 outside every layer."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def arrows_back_up(graph: dict[str, dict[str, int]], by_folder: bool = True) -> list[str]:
    """``"a:line -> b"`` for each import from a lower layer to a higher one. ``by_folder``: a module's layer is its
    top-level package's (what the folders show: an app inside ``plm_interp/`` is the library's arrow up), else
    the longest matching prefix in :data:`LAYERS` (the app counted where it is)."""
    def layer(m: str) -> int:
        return layer_of(m.split(".")[0] if by_folder else m)

    return [f"{a}:{line} -> {b}" for a in sorted(graph) for b, line in sorted(graph[a].items())
            if layer(b) > layer(a) >= 0]


def package_graph(graph: dict[str, dict[str, int]]) -> dict[str, set[str]]:
    """Top-level package -> the top-level packages its modules import."""
    out: dict[str, set[str]] = defaultdict(set)
    for a, targets in graph.items():
        out[a.split(".")[0]] |= {b.split(".")[0] for b in targets if b.split(".")[0] != a.split(".")[0]}
    return out


def floors(pgraph: dict[str, set[str]]) -> tuple[int, list[str]]:
    """The longest chain of top-level packages in which each imports a lower one (arrows back up are not
    floors): the number of storeys the folders stand on."""
    best: list[str] = []

    def walk(path: list[str]) -> None:
        nonlocal best
        if len(path) > len(best):
            best = list(path)
        for nxt in sorted(pgraph.get(path[-1], ())):
            if nxt not in path and layer_of(nxt) < layer_of(path[-1]):
                walk(path + [nxt])

    for start in sorted(pgraph):
        walk([start])
    return len(best), best


def largest_files(root: Path, package_names: list[str], n: int = 10) -> list[tuple[int, str]]:
    sizes = [(len(p.read_text().splitlines()), str(p.relative_to(root)))
             for p in module_files(root, package_names).values()]
    return sorted(sizes, key=lambda s: (-s[0], s[1]))[:n]


class _Rename(ast.NodeTransformer):
    """Local names -> v0, v1, ... in order of appearance, so two copies that differ only in them compare equal."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def _new(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id=self._new(node.id), ctx=node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return ast.copy_location(ast.arg(arg=self._new(node.arg)), node)


def _functions(root: Path, package_names: list[str]) -> list[tuple[str, Path, int, int, list[str]]]:
    """``(name, file, first line, last line, tokens)`` of every function of at least :data:`MIN_DUPLICATE_LINES`
    lines (docstring left out); tokens are its AST nodes in order, local names renamed in order of appearance."""
    out = []
    for module, path in module_files(root, package_names).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]
            if not body or body[-1].end_lineno - body[0].lineno + 1 < MIN_DUPLICATE_LINES:
                continue
            renamer = _Rename()
            renamer.visit(copy.deepcopy(node.args))  # the parameters first: the same placeholders in both copies
            tree = renamer.visit(ast.Module(body=copy.deepcopy(body), type_ignores=[]))
            tokens = [type(n).__name__ + (f":{n.id}" if isinstance(n, ast.Name) else f".{n.attr}"
                                          if isinstance(n, ast.Attribute) else f"={n.value!r}"
                                          if isinstance(n, ast.Constant) else "") for n in ast.walk(tree)]
            out.append((f"{module}.{node.name}:{node.lineno}", path, node.lineno, node.end_lineno, tokens))
    return out


def duplicate_pairs(root: Path, package_names: list[str],
                    threshold: float = DUPLICATE_SIMILARITY) -> list[tuple[float, str, str]]:
    """Pairs of functions whose token sequences (:func:`_functions`) are at least ``threshold`` alike (difflib's
    ratio; 1.0 = the same code up to local names). A function nested in the other does not count."""
    funcs = _functions(root, package_names)
    pairs = []
    for (a, pa, a0, a1, ta), (b, pb, b0, b1, tb) in itertools.combinations(funcs, 2):
        if pa == pb and (a0 <= b0 <= b1 <= a1 or b0 <= a0 <= a1 <= b1):
            continue
        if min(len(ta), len(tb)) < threshold * max(len(ta), len(tb)):
            continue
        match = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
        if match.quick_ratio() >= threshold and (r := match.ratio()) >= threshold:
            pairs.append((round(r, 3), a, b))
    return sorted(pairs, reverse=True)


def function_parameters(path: Path, name: str) -> list[str] | None:
    """The parameter names of the top-level function ``name`` in ``path`` (None when there is none)."""
    if not path.exists():
        return None
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            a = node.args
            return [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs] + \
                [f"*{x.arg}" for x in (a.vararg,) if x] + [f"**{x.arg}" for x in (a.kwarg,) if x]
    return None


def counts(root: Path = ROOT) -> dict:
    names = packages(root)
    graph = module_graph(root, names)
    pgraph = package_graph(graph)
    n_floors, chain = floors(pgraph)
    up = arrows_back_up(graph)
    up_layers = arrows_back_up(graph, by_folder=False)
    circ = circles(graph)
    params = function_parameters(root / "analyses" / "nt_probe.py", "nt_probe")
    return {
        "packages": names,
        "modules": len(graph),
        "lines": sum(s for s, _ in largest_files(root, names, n=10**6)),
        "package_imports": {p: sorted(t) for p, t in sorted(pgraph.items())},
        "floors": n_floors,
        "longest_chain": chain,
        "arrows_back_up": len(up),
        "arrows_back_up_list": up,
        "arrows_back_up_by_layer": len(up_layers),
        "circles": len(circ),
        "circles_list": circ,
        "largest_files": largest_files(root, names),
        "duplicate_pairs": duplicate_pairs(root, names),
        "nt_probe_parameters": params,
    }


def report(c: dict) -> str:
    lines = [f"packages: {', '.join(c['packages'])} ({c['modules']} modules, {c['lines']} lines)",
             "package imports: " + "; ".join(f"{p} -> {', '.join(t) or '-'}" for p, t in c["package_imports"].items()),
             f"floors: {c['floors']} ({' -> '.join(c['longest_chain'])})",
             f"arrows back up (folders: an import from a top-level package to a higher one): {c['arrows_back_up']}"]
    lines += [f"  {a}" for a in c["arrows_back_up_list"]]
    lines.append(f"arrows back up (layers: the app counted where it is, as tests/test_architecture.py does): "
                 f"{c['arrows_back_up_by_layer']}")
    lines.append(f"circles: {c['circles']}")
    lines += [f"  {' <-> '.join(m)}" for m in c["circles_list"]]
    lines.append("largest files:")
    lines += [f"  {n:5d} {p}" for n, p in c["largest_files"]]
    lines.append(f"duplicate pairs (functions >= {MIN_DUPLICATE_LINES} lines, >= {DUPLICATE_SIMILARITY} alike): "
                 f"{len(c['duplicate_pairs'])}")
    lines += [f"  {r:.3f}  {a}  ~  {b}" for r, a, b in c["duplicate_pairs"]]
    params = c["nt_probe_parameters"]
    lines.append(f"nt_probe parameters: {len(params) if params is not None else '-'} ({', '.join(params or [])})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    c = counts()
    print(json.dumps(c, indent=1) if args.json else report(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
