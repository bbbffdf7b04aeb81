"""``plm-interp experiment NAME [--scale cpu|paper|tiny] [--runs-dir DIR] [--dry-run | --table | --estimate]``.

Runs one of the papers' comparisons: every training run and analysis not done yet under ``--runs-dir`` (default
``runs/experiments/SCALE``), then writes the table (ours beside the paper's) to ``RUNS_DIR/_tables/NAME/``.
Re-issue the same command to continue after an interruption: finished runs are skipped, unfinished ones resume
from their newest checkpoint. Issue it again beside a running one (another core or GPU) to share the work: each
run directory is worked on by one process at a time. ``--list`` shows the experiments; ``--dry-run`` prints each
step's command and state (todo, partial, done, stale, and the process holding it, if one does); ``--table`` only
rebuilds the table; ``--estimate`` times a few steps of each training run and prints the tokens and hours it will
take here; ``--arm LABEL`` limits the work (and the estimate) to that arm's runs. Scales: ``paper`` (the recipes/,
GPU), ``cpu`` (hours on one core), ``tiny`` (a smoke test: every step at a 1-layer, 2-step size, seconds).
"""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    from plm_app.experiments.spec import SCALES

    p = sub.add_parser("experiment", help="run one of the papers' comparisons (training runs + analyses + table)",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("name", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument("--scale", choices=SCALES, default="cpu", help="cpu (default), paper or tiny")
    p.add_argument("--runs-dir", help="where the runs live (default runs/experiments/SCALE)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print every step's command and state; run nothing")
    mode.add_argument("--table", action="store_true", help="only rebuild the table from the run directories")
    mode.add_argument("--estimate", action="store_true", help="time a few steps of each training run")
    p.add_argument("--estimate-steps", type=int, default=4, help="optimiser steps per timed run (default 4)")
    p.add_argument("--arm", action="append", metavar="LABEL",
                   help="only this arm's runs and analyses (repeatable; e.g. 'weak p=0.5'); the table shows all arms")
    p.add_argument("--poll", type=float, default=30.0,
                   help="seconds between checks while waiting for a run another process holds (default 30)")
    p.add_argument("--no-wait", action="store_true",
                   help="leave runs another process holds to it and finish (e.g. to move on to the next experiment)")
    p.set_defaults(func=main)


def main(args) -> int:
    from plm_app import experiments
    from plm_app.experiments import runner, table

    if args.list or not args.name:
        for exp in experiments.EXPERIMENTS.values():
            arms = ", ".join(a.label for a in exp.arms)
            print(f"{exp.name:24s} {exp.title}\n{'':24s} arms: {arms}; seeds cpu {len(exp.seeds['cpu'])}, "
                  f"paper {len(exp.seeds['paper'])}")
        return 0
    exp = experiments.get(args.name)
    exp.validate()
    if not args.poll > 0:
        raise ValueError(f"--poll = {args.poll} must be > 0 seconds")
    if args.estimate_steps < 2:
        raise ValueError(f"--estimate-steps = {args.estimate_steps} must be >= 2 (the first step is not timed)")
    runs_dir = Path(args.runs_dir) if args.runs_dir else Path("runs") / "experiments" / args.scale
    steps = runner.plan(exp, args.scale, runs_dir, args.arm)
    if args.dry_run:
        from plm_interp.training.lock import holder

        for s in steps:
            state = ("stale" if s.stale else "done") if s.done else (
                "partial" if (s.directory / "checkpoints").is_dir() and s.kind == "train" else "todo")
            held = holder(s.directory) if state != "done" else None
            if held is not None:
                state = f"{state}, held by pid {held.get('pid', '?')} on {held.get('host', '?')}"
            print(f"[{state}] {s.describe()}")
        return 0
    if args.estimate:
        from plm_app.experiments.estimate import estimate

        costs = estimate(exp, args.scale, args.estimate_steps, arms=args.arm)
        hours = sum(c.seconds for c in costs) / 3600
        print(f"{exp.name} ({args.scale}): {len(costs)} training runs, {sum(c.tokens for c in costs) / 1e6:.1f}M "
              f"tokens, ≈ {hours:.1f} h of training on this machine (analyses not included)")
        return 0
    if not args.table:
        counts = runner.execute(steps, report=lambda m: print(f"[experiment] {m}", file=sys.stderr, flush=True),
                                poll=args.poll, wait=not args.no_wait)
        left = f", {counts['left']} left to other processes" if counts["left"] else ""
        print(f"[experiment] {counts['run']} step(s) run, {counts['skipped']} already done{left}", file=sys.stderr)
    tab = table.build(exp, args.scale, runs_dir)
    out = table.write(tab, runs_dir)
    print(tab.markdown())
    print(f"table written to {out}")
    return 0
