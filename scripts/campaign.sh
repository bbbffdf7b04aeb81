#!/usr/bin/env bash
# One stream of an experiments campaign: `bash scripts/campaign.sh EXPERIMENT...` (docs/part1_experiments.md).
#
# Why a wrapper: a campaign is hours of CPU shared by a few streams (one per core) beside the user's own work.
# Each stream runs every named experiment with --no-wait first (taking the runs no other stream holds, then moving
# on), then again with waiting, so that the streams spread over the arms and each experiment's table is written
# once its last run ends. Re-issuing the same command continues the campaign (finished steps are skipped,
# interrupted runs resume from their newest checkpoint; SIGTERM checkpoints before it exits).
#   PLM_RUNS_DIR  where the runs live (default runs/experiments/cpu)   PLM_SCALE  cpu (default), paper or tiny
#   OMP_NUM_THREADS  torch threads per stream (default 1: streams, not threads, use the cores of a small machine)
#   PLM_BIN  the plm-interp command (default this checkout's .venv, else the one on PATH)
#   PLM_CARRY  a folder in the repository that carries the training state across machines (carry.py): unpacked
#              into the runs before the campaign starts, packed again when the stream ends (also on SIGTERM:
#              `kill -- -PGID` lets the trainer checkpoint first); commit it to continue on the next machine
# The code that runs is this checkout's (PYTHONPATH), so a git worktree pinned at one commit keeps a campaign on
# that commit while the main checkout moves on.
# The stream lowers its own priority (nice 19, and its autogroup's where the kernel groups by session) so that
# an interactive session on the same machine keeps its speed.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash scripts/campaign.sh EXPERIMENT... (see: plm-interp experiment --list)" >&2; exit 2; }
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
runs="${PLM_RUNS_DIR:-runs/experiments/cpu}"
scale="${PLM_SCALE:-cpu}"
bin="${PLM_BIN:-.venv/bin/plm-interp}"
[ -x "$bin" ] || bin="plm-interp"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PLM_PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py="python3"
carry="${PLM_CARRY:-}"
if [ -n "$carry" ]; then
  [ $# -eq 1 ] || { echo "PLM_CARRY carries one experiment; name one" >&2; exit 2; }
  [ -f "$carry/carry.json" ] && "$py" -m plm_app.experiments.carry unpack "$1" --runs-dir "$runs" --to "$carry" --scale "$scale" >&2
  trap '"$py" -m plm_app.experiments.carry pack "$1" --runs-dir "$runs" --to "$carry" --scale "$scale" >&2' EXIT
fi
renice -n 19 -p $$ > /dev/null 2>&1 || true
echo 19 > /proc/self/autogroup 2> /dev/null || true
for mode in --no-wait ""; do
  for exp in "$@"; do
    echo "[campaign] $(date -u +%FT%TZ) $exp ${mode:-(waiting)}" >&2
    # shellcheck disable=SC2086  # $mode is empty or one flag
    "$bin" experiment "$exp" --scale "$scale" --runs-dir "$runs" $mode > /dev/null
  done
done
echo "[campaign] $(date -u +%FT%TZ) done: $*" >&2
