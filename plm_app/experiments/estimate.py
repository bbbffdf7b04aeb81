"""What an experiment's training will cost here: tokens from the resolved configs, time from a few timed steps.

Each training run not finished yet is started for ``steps`` optimiser steps in a scratch directory (same model,
data and batch; the learning-rate schedule does not change the cost of a step) and its rate in tokens/s, after
the first step (which allocates the optimizer state), scales its whole budget. A stage that starts from another
run's model (not trained yet) is timed on a fresh model of the first stage's architecture. Analyses are not
included: their cost is measured when they run (``experiment_log.jsonl``).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from plm_app.experiments import runner, scales
from plm_app.experiments.spec import Experiment, Shipped, Train


@dataclass
class RunCost:
    name: str
    tokens: int
    tokens_per_s: float

    @property
    def seconds(self) -> float:
        """Estimated wall time of one seed's run here."""
        return self.tokens / self.tokens_per_s


def _standalone(run: Train) -> Train:
    """``run`` with a not-yet-trained ``after`` replaced by the architecture of its chain's first stage."""
    if not isinstance(run.after, Train):
        return run
    root = run.chain()[0]
    model = {k: v for k, v in root.sets.items() if k.startswith("model.")}
    return replace(run, preset=root.preset, sets={**model, **run.sets}, after=None)


def _args(argv: list[str]):
    from plm_app.commands import train as train_cli

    parser = argparse.ArgumentParser(prog="plm-interp")
    train_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def total_tokens(run: Train, scale: str) -> int:
    """Tokens the run's budget trains on (steps x batch x n_ctx, as the trainer counts them)."""
    from plm_app.commands import train as train_cli

    args = _args(scales.train_argv(_standalone(run), scale, 0, Path(tempfile.gettempdir())))
    cfg = train_cli.resolve_args(args)
    return cfg.train.total_steps(cfg.model.n_ctx) * cfg.train.batch_size * cfg.model.n_ctx


def time_run(run: Train, scale: str, steps: int = 4) -> float:
    """Tokens per second over ``steps`` - 1 timed optimiser steps of ``run`` (after one warm-up step)."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = replace(_standalone(run), sets={**_standalone(run).sets, "train.max_steps": steps,
                                                "train.ckpt_every": 0, "train.log_every": 1,
                                                "train.warmup_steps": 0})
        argv = scales.train_argv(probe, scale, 0, Path(tmp))
        runner._train(argv)
        records = [json.loads(x) for x in (Path(tmp) / f"{run.name}-s0" / "metrics.jsonl").read_text().splitlines()]
        rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r and r["step"] > 1]
        return sum(rates) / len(rates)


def estimate(exp: Experiment, scale: str, steps: int = 4, report=print,
             arms: list[str] | None = None) -> list[RunCost]:
    """Cost of each distinct training run of ``exp`` (all seeds cost the same: timed once, counted per seed);
    ``arms``: only those arms' runs (as ``plm-interp experiment --arm``)."""
    out, seen = [], set()
    for arm in (a for a in exp.arms if not arms or a.label in arms):
        src = arm.source(scale)
        if isinstance(src, Shipped):
            continue
        for run in src.chain():
            if run.name in seen:
                continue
            seen.add(run.name)
            cost = RunCost(run.name, total_tokens(run, scale), time_run(run, scale, steps))
            report(f"{run.name}: {cost.tokens / 1e6:.1f}M tokens at {cost.tokens_per_s:,.0f} tokens/s "
                   f"≈ {cost.seconds / 3600:.2f} h per seed")
            out += [cost] * len(exp.seeds_at(scale))
    return out
