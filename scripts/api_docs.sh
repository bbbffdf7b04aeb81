#!/usr/bin/env bash
# API reference from the docstrings (pdoc, HTML) for plm_interp, tasks, analyses and plm_app: docs/api/index.html.
#
#   bash scripts/api_docs.sh            # writes docs/api/ (generated, gitignored)
#   bash scripts/api_docs.sh OUT_DIR    # writes elsewhere (the tests use a temporary directory)
#
# pdoc follows a package's __all__ and so would skip every submodule of the packages; the
# public modules (no name part starting with "_") are therefore listed explicitly. Docstrings are reST-flavoured
# (``code``, :class:`X`), hence --docformat restructuredtext. Needs the dev extra (pip install -e ".[dev]").
set -euo pipefail
OUT=docs/api
if [ -n "${1:-}" ]; then OUT=$(realpath -m "$1"); fi  # relative to where the script was called from
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [ "$OUT" = docs/api ]; then rm -rf docs/api; fi  # drop pages of removed modules
"$PY" - "$OUT" <<'EOF'
import importlib, pkgutil, sys, warnings
from pathlib import Path

import pdoc
import pdoc.extract

specs, seen = [], set()
for top in ("plm_interp", "tasks", "analyses", "plm_app"):
    pkg = importlib.import_module(top)
    for name in [top] + [m.name for m in pkgutil.walk_packages(pkg.__path__, top + ".")]:
        if name not in seen and not any(part.startswith("_") for part in name.split(".")):
            specs.append(name)
            seen |= set(pdoc.extract.walk_specs([name]))  # what pdoc adds by itself (packages without __all__)
pdoc.render.configure(docformat="restructuredtext")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    pdoc.pdoc(*specs, output_directory=Path(sys.argv[1]))
print(f"{len(seen)} modules documented in {sys.argv[1]}/ — open {sys.argv[1]}/index.html")
EOF
