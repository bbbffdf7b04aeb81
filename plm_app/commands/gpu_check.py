"""``plm-interp gpu-check [--dry-run] [--out FILE] ...``: measure a lent GPU for the paper-scale recipes.

A thin subcommand over :mod:`plm_app.gpu_check` (the same options as ``python -m plm_app.gpu_check`` and
``scripts/gpu_check.sh``); see docs/training.md, "Checking a GPU".
"""
from __future__ import annotations


def add_parser(sub) -> None:
    from plm_app import gpu_check

    p = sub.add_parser("gpu-check", help="measure this GPU: kernels, tokens/s and MFU, hooks, DataLoader, DDP",
                       description=gpu_check.__doc__.split("\n\n")[0])
    gpu_check.add_arguments(p)
    p.set_defaults(func=gpu_check.run)
