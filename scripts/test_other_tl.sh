#!/usr/bin/env bash
# Run the model + TransformerLens interop tests on the *other* supported TransformerLens line.
# The default environment (.venv) gets the newest 4.x; this makes .venv-tl3 with transformer-lens 3.9, the line
# sae-lens requires (sae-lens pins transformer-lens < 4, so it cannot install beside 4.x), plus sae-lens and
# nnsight, then runs tests/test_model_*.py and tests_other_tl/ (TL 3.9's own HookedTransformer with the same
# weights, sae-lens's training runner / run_evals / SAE splicing).
# Usage: bash scripts/test_other_tl.sh [TL_VERSION] [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
TL="${1:-3.9.0}"
export PLM_VENV="${PLM_VENV_OTHER:-.venv-tl3}"
bash scripts/setup.sh
"$PLM_VENV/bin/python" -m pip --disable-pip-version-check -q install "transformer-lens==$TL" "sae-lens==6.54.12" \
    "nnsight==0.8.1"
"$PLM_VENV/bin/python" -c "import importlib.metadata as m; print('transformer-lens', m.version('transformer-lens'), \
'sae-lens', m.version('sae-lens'), 'nnsight', m.version('nnsight'))"
exec "$PLM_VENV/bin/python" -m pytest -q tests/test_model_*.py tests_other_tl "${@:2}"
