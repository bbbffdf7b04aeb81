#!/usr/bin/env bash
# The README's main job: installs what it needs, then runs `plm-interp quickstart` (CPU, minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PLM_EXTRA="${PLM_EXTRA:-dev}" bash scripts/setup.sh
exec "${PLM_VENV:-.venv}/bin/plm-interp" quickstart "$@"
