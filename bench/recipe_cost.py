"""What each paper-scale recipe (``recipes/``) costs: parameters, tokens, FLOPs and estimated H100 hours.

Derived, not measured: training FLOPs per token are the PaLM "model FLOPs" (the definition
``bench/train_step.py`` uses for MFU, so a measured MFU can be plugged in with ``--mfu``):

    6 · N_params  +  12 · n_layers · n_ctx · d_model

times the run's tokens (steps × batch × n_ctx, padding included), divided by an H100's dense bf16 peak
(989 TFLOP/s) × an assumed model-FLOPs utilisation. Parameters are counted on a model built on the ``meta``
device (exact, no memory). ``--measure-cpu`` times a few real training steps of one recipe's model on this
machine's CPU, as a check that the FLOP count and the code agree with a measured rate.

    python bench/recipe_cost.py                          # the table, MFU 35% (and 20% for a pessimistic bound)
    python bench/recipe_cost.py --measure-cpu --seconds 60

Assumed or measured: when ``bench/gpu_check.json`` exists (written on a GPU by ``bash scripts/gpu_check.sh``,
see docs/training.md) the table gains a column of hours on *that* GPU at *its measured* MFU (GPT2-small, bf16),
and the header says so; the assumed-MFU H100 columns stay beside it. A dry-run report (CPU) is refused.
"""
from __future__ import annotations

import argparse
import json
import time
import tomllib
from pathlib import Path

import torch

from plm_interp import HookedPLM
from plm_app import runconfig

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
H100_BF16_PEAK = 989e12  # FLOP/s, dense (no sparsity)
MEASURED = Path(__file__).resolve().parent / "gpu_check.json"


def load_measured(path: Path) -> dict:
    """The ``cost_table_mfu`` entry of a gpu_check report: ``{"mfu", "from", "device", "peak_bf16_tflops"}``
    plus when it was measured. Raises ``ValueError`` for a dry run or a report without a usable MFU."""
    report = json.loads(Path(path).read_text())
    if report.get("dry_run"):
        raise ValueError(f"{path} is a --dry-run report (CPU, tiny shape): it measures no GPU")
    entry = report.get("cost_table_mfu")
    if not entry or not entry.get("mfu") or not entry.get("peak_bf16_tflops"):
        raise ValueError(f"{path} has no measured MFU (cost_table_mfu = {entry!r}): the GPU's bf16 peak was "
                         "unknown (rerun with --peak-tflops) or the GPT2-small stage failed")
    return {**entry, "measured_at": report.get("measured_at")}


def measured_hours(row: dict, measured: dict) -> float:
    """Hours of one recipe on the measured GPU at its measured MFU."""
    return row["flops"] / (measured["peak_bf16_tflops"] * 1e12 * measured["mfu"]) / 3600


def load(path: Path) -> runconfig.RunConfig:
    """A recipe file resolved exactly as ``plm-interp train KIND --config PATH`` would."""
    kind = tomllib.loads(path.read_text())["task"]["kind"]
    return runconfig.resolve(kind, runconfig.merge(runconfig.load_file(path)))


def n_params(cfg) -> int:
    with torch.device("meta"):
        model = HookedPLM(cfg.model.replace(device="meta"))
    return sum(p.numel() for p in model.parameters())


def flops_per_token(cfg, params: int) -> int:
    m = cfg.model
    return 6 * params + 12 * m.n_layers * m.n_ctx * m.d_model


def cost(path: Path, mfus: tuple[float, ...]) -> dict:
    cfg = load(path)
    params = n_params(cfg)
    tokens = cfg.train.total_steps(cfg.model.n_ctx) * cfg.train.batch_size * cfg.model.n_ctx
    flops = flops_per_token(cfg, params) * tokens
    return {"recipe": path.relative_to(RECIPES).as_posix(), "params": params, "tokens": tokens, "flops": flops,
            "hours": [flops / (H100_BF16_PEAK * u) / 3600 for u in mfus]}


def measure_cpu(path: Path, batch: int, seconds: float) -> None:
    """Forward + backward + AdamW steps of the recipe's model (fp32, one thread) on its own data."""
    torch.set_num_threads(1)
    cfg = load(path)
    model = HookedPLM(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, betas=cfg.train.betas)
    data = cfg.task.batches(batch, cfg.model.n_ctx, seed=0)
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 2:
        tokens = next(data).tokens
        t0 = time.perf_counter()
        model(tokens, return_type="loss").backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    steady = times[1:]  # the first step allocates optimizer state
    tps = batch * cfg.model.n_ctx * len(steady) / sum(steady)
    fpt = flops_per_token(cfg, sum(p.numel() for p in model.parameters()))
    print(f"measured on CPU: {path.relative_to(RECIPES)} batch {batch} x {cfg.model.n_ctx}, {len(steady)} timed "
          f"steps (after 1 warm-up): {tps:,.0f} tokens/s = {tps * fpt / 1e9:.1f} GFLOP/s (1 thread, fp32)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mfu", type=float, nargs="+", default=[0.35, 0.20], help="assumed MFU(s), first is the headline")
    p.add_argument("--measure-cpu", action="store_true", help="also time real training steps on this CPU")
    p.add_argument("--recipe", default="part1/cfg3f_rot.toml", help="the recipe --measure-cpu times")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seconds", type=float, default=45.0)
    p.add_argument("--measured", type=Path, default=None,
                   help="a gpu_check report (default: bench/gpu_check.json if it exists)")
    args = p.parse_args(argv)
    measured = load_measured(args.measured or MEASURED) if args.measured or MEASURED.is_file() else None
    rows = [cost(path, tuple(args.mfu)) for path in sorted(RECIPES.glob("part*/*.toml"))]
    mfu_cols = "".join(f" {f'H100 h @{u:.0%}':>13s}" for u in args.mfu)
    if measured:
        for r in rows:
            r["hours"].insert(0, measured_hours(r, measured))
        mfu_cols = f" {'measured h':>13s}" + mfu_cols
        print(f"MFU MEASURED: {measured['mfu']:.1%} on {measured['device']} ({measured['from']}, "
              f"{measured['measured_at']}; peak {measured['peak_bf16_tflops']:.0f} TFLOP/s); "
              f"H100 columns: ASSUMED MFU {', '.join(f'{u:.0%}' for u in args.mfu)}")
        args.mfu = [measured["mfu"], *args.mfu]
    else:
        print(f"MFU ASSUMED ({', '.join(f'{u:.0%}' for u in args.mfu)}): no GPU measurement "
              f"({MEASURED.name} absent; bash scripts/gpu_check.sh writes it on a GPU)")
    print(f"{'recipe':50s} {'params':>11s} {'tokens':>8s} {'FLOP/token':>11s} {'FLOPs':>9s}{mfu_cols}")
    for r in rows:
        hours = "".join(f" {h:13.1f}" for h in r["hours"])
        print(f"{r['recipe']:50s} {r['params']:11,d} {r['tokens'] / 1e9:7.1f}B {r['flops'] / r['tokens'] / 1e6:10.0f}M "
              f"{r['flops']:9.2e}{hours}")
    for part in ("part1", "part2_1", "part2_2"):
        sel = [r for r in rows if r["recipe"].startswith(part + "/")]
        total = "  ".join(f"{sum(r['hours'][i] for r in sel):,.0f} h @{u:.0%}" for i, u in enumerate(args.mfu))
        print(f"total {part}: {len(sel)} recipes, {total}")
    if args.measure_cpu:
        measure_cpu(RECIPES / args.recipe, args.batch, args.seconds)


if __name__ == "__main__":
    main()
