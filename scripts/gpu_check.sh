#!/usr/bin/env bash
# Measure a lent GPU for the paper-scale recipes (<= 8 min): device, versions, bf16/SDPA kernels, training
# tokens/s and MFU (GPT2-small, `small`), the cost of run_with_cache hooks, DataLoader starvation, 2-GPU NCCL
# DDP, transformers GPT-2 beside it. Writes bench/gpu_check.json, which bench/recipe_cost.py reads.
#   bash scripts/gpu_check.sh              # on the GPU machine
#   bash scripts/gpu_check.sh --dry-run    # every stage on CPU at a tiny shape (what the tests run)
# See docs/training.md ("Checking a GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PLM_VENV:-.venv}/bin/python" -m plm_app.gpu_check "$@"
