#!/usr/bin/env bash
# Run the model + TransformerLens interop tests on the *other* supported TransformerLens line.
# The default environment (.venv) gets the newest 4.x; this makes .venv-tl3 with transformer-lens 3.9
# (the line sae-lens requires). Usage: bash scripts/test_other_tl.sh [TL_VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
TL="${1:-3.9.0}"
export PLM_VENV="${PLM_VENV_OTHER:-.venv-tl3}"
bash scripts/setup.sh
"$PLM_VENV/bin/python" -m pip --disable-pip-version-check -q install "transformer-lens==$TL"
"$PLM_VENV/bin/python" -c "import importlib.metadata as m; print('transformer-lens', m.version('transformer-lens'))"
exec "$PLM_VENV/bin/python" -m pytest -q tests/test_model_*.py "${@:2}"
