#!/usr/bin/env bash
# The README's test command: installs what it needs, then runs the default (fast) test tier.
# Pass pytest arguments through, e.g. `bash scripts/test.sh -m slow` for the slow tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PLM_VENV:-.venv}/bin/python" -m pytest -q "$@"
