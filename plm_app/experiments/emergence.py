"""When does the hidden reasoning appear? Analyses of one long run's kept checkpoints, along training.

``part2_1_emergence`` trains one iGSM model for 639M tokens and keeps a checkpoint every 1,000 steps. This module
picks the checkpoints nearest to log-spaced token counts (:data:`TOKEN_POINTS`), runs at each the accuracy per op
(in distribution and op + 1), the six V-probes and the regret probe (each beside its random-init control and
majority guess), and writes one small summary per point into the repository (``results/part2_1_emergence/``),
so the curve survives the machine the run directory lives on. Every point is scored and probed on the last
stage's task (:func:`probe_task`), whatever stage its checkpoint comes from, and the random-init control does not
depend on the checkpoint (same architecture, same seed), so it is measured once, on that task. :func:`draw` turns the summaries into the plot
(accuracy minus majority guess per probe against tokens seen, log x, with the model's accuracy) and the table.

    plm-interp experiment part2_1_emergence --scale cpu --runs-dir RUNS       # trains (resumable)
    python -m plm_app.experiments.emergence --runs-dir RUNS             # analyses what exists, then draws
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "part2_1_emergence"
STAGES = ("igsm-tiny-8x96-long-op1", "igsm-tiny-8x96-long")
#: log-spaced token counts (half octaves from 16M to 639M) at which a checkpoint is analysed
TOKEN_POINTS = tuple(int(16e6 * 2 ** (k / 2)) for k in range(11)) + (639_000_000,)
V_PROBES = ("nece", "dep", "known", "value", "can_next", "nece_next")
#: accuracy in distribution (op <= 3) and one op above (op = 4), 128 problems each; the probes' defaults
DEFAULT_OPTIONS: dict[str, dict] = {"reasoning_level": {"n": 128, "sets": ["in", "op=4"]}}


def checkpoints(runs_dir: Path, seed: int = 0) -> list[tuple[int, Path, Path]]:
    """``(tokens seen from the start of the first stage, checkpoint directory, run directory)`` of every complete
    checkpoint of both stages (the second stage's tokens count after the first stage's)."""
    from plm_interp.training.checkpointing import MANIFEST, list_checkpoints

    out, offset = [], 0
    for stage in STAGES:
        run = Path(runs_dir) / f"{stage}-s{seed}"
        found = []
        for step, directory in list_checkpoints(run / "checkpoints"):
            if (directory / MANIFEST).is_file():
                tokens = step * _tokens_per_step(run)
                found.append((offset + tokens, directory, run))
        out += sorted(found)
        final = run / "final" / "config.json"
        if not final.is_file():
            break
        offset += _total_tokens(run)
    return out


def _tokens_per_step(run: Path) -> int:
    cfg = json.loads((run / "config.json").read_text())
    return int(cfg["train"]["batch_size"]) * int(cfg["model"]["n_ctx"])


def _total_tokens(run: Path) -> int:
    cfg = json.loads((run / "config.json").read_text())
    return int(cfg["train"]["max_steps"]) * _tokens_per_step(run)


def pick(available: list[tuple], points=TOKEN_POINTS, tolerance: float = 0.15):
    """For each target token count, the checkpoint nearest to it in log tokens (within ``tolerance`` of an octave
    on either side), each checkpoint at most once."""
    chosen, used = [], set()
    for target in points:
        best = min(available, key=lambda c: abs(math.log2(c[0] / target)), default=None)
        if best is not None and abs(math.log2(best[0] / target)) <= tolerance and best[1] not in used:
            used.add(best[1])
            chosen.append((target, *best))
    return chosen


def load_checkpoint(directory: Path, run: Path):
    """The model of a training checkpoint (weights of ``state.pt``, architecture and task of the run)."""
    from plm_interp import HookedPLM
    from plm_interp.config import PLMConfig

    cfg = json.loads((run / "config.json").read_text())
    model = HookedPLM(PLMConfig.from_dict({**cfg["model"], "task": cfg["task"], "device": "cpu"}))
    state = torch.load(directory / "state.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    return model.eval()


def probe_task(runs_dir: Path, seed: int = 0) -> dict | None:
    """The task every point is scored and probed on: the last stage's (the campaign's target, op <= 3), read from
    its run's config; None before that stage has started.

    Why one task for all points: a stage-1 checkpoint carries stage 1's task (op = 1, random letter order), and
    probing each checkpoint on its own task would change the questions, the problems and the majority guesses
    along the x axis, with one control measured on only one of them. The curve asks the same questions of the same
    problem distribution at every point, beside a control measured on that task."""
    cfg = Path(runs_dir) / f"{STAGES[-1]}-s{seed}" / "config.json"
    return json.loads(cfg.read_text())["task"] if cfg.is_file() else None


def summarise(model, controls: bool, seed: int = 0, progress: bool = False,
              options: dict[str, dict] | None = None, task: dict | None = None) -> dict[str, Any]:
    """Accuracy per op (in distribution and the OOD ops) and every probe's figure, majority guess and n (with the
    random-init control when ``controls``) on ``task`` (default the model's own): the small JSON a point of the
    curve is drawn from."""
    import analyses

    options = {**DEFAULT_OPTIONS, **(options or {})}
    level = analyses.run("reasoning_level", model, task=task, progress=progress, **options["reasoning_level"])
    out: dict[str, Any] = {"accuracy": [{k: r.get(k) for k in ("set", "op", "acc", "n")} for r in level.records]}
    for probe in V_PROBES:
        r = analyses.run("v_probe", model, task=task, probe=probe, controls=controls, progress=progress, seed=seed,
                         **options.get("v_probe", {}))
        out[probe] = _probe_summary(r)
    r = analyses.run("regret_probe", model, task=task, controls=controls, progress=progress, seed=seed,
                     **options.get("regret_probe", {}))
    out["regret"] = {**_probe_summary(r), "detect": r.record()["detect"], "false_alarm": r.record()["false_alarm"],
                     "n_mistakes": r.record()["n_mistakes"]}
    return out


def _probe_summary(r) -> dict[str, Any]:
    t = r.record()
    keep = ("acc", "majority", "n", "balanced_acc", "fit_failed", "steps", "converged")
    out = {k: t.get(k) for k in keep}
    if any(x["model"] == "random-init" for x in r.records):
        out["control"] = r.record(model="random-init")["acc"]
    return out


def analyse(runs_dir: Path, results: Path = RESULTS, seed: int = 0, progress: bool = True,
            options: dict[str, dict] | None = None, report=print) -> list[Path]:
    """Summarise every picked checkpoint not summarised yet (``results/tokens_<N>.json``), and the random-init
    control once (``results/control.json``). Returns the files written."""
    from plm_interp.io import atomic_write_json

    results.mkdir(parents=True, exist_ok=True)
    written = []
    picked = pick(checkpoints(runs_dir, seed))
    task = probe_task(runs_dir, seed)
    if not picked or task is None:
        report(f"nothing to analyse under {runs_dir} yet: " + ("no checkpoint" if not picked else
               f"the probes' task is {STAGES[-1]}'s, whose run has not started"))
        return written
    control_file = results / "control.json"
    if _task_of(control_file) != task:  # absent, or measured on another task: (re)measure
        from analyses._task import random_init_like

        model = load_checkpoint(picked[0][2], picked[0][3])
        atomic_write_json(control_file, {"task": task, **summarise(random_init_like(model, seed=seed + 777), False,
                                                                   seed, progress, options, task)})
        written.append(control_file)
    # a target already summarised on this task is done, from whichever checkpoint: a later sitting carries only its
    # newest checkpoint, which may land nearer a target than the one analysed (45 minutes per point on a CPU)
    covered = {json.loads(f.read_text()).get("target") for f in results.glob("tokens_*.json") if _task_of(f) == task}
    for target, tokens, directory, run in picked:
        out = results / f"tokens_{tokens:011d}.json"
        if target in covered:  # (this checkpoint's own summary included)
            continue
        report(f"[emergence] {tokens / 1e6:.1f}M tokens ({directory})")
        summary = summarise(load_checkpoint(directory, run), False, seed, progress, options, task)
        atomic_write_json(out, {"tokens": tokens, "target": target, "checkpoint": f"{run.name}/{directory.name}",
                                "task": task, **summary})
        written.append(out)
    return written


def _task_of(summary: Path) -> dict | None:
    """The task a committed summary was measured on (None: absent, or written before summaries named it)."""
    return json.loads(summary.read_text()).get("task") if summary.is_file() else None


def first_beating(points: list[dict], control: dict, probe: str) -> int | None:
    """Tokens of the first point whose figure beats both its majority guess and the random-init control by more
    than its 95% Wilson half-width (the "appears" mark of the plot); None if none does."""
    from analyses.result import wilson

    for p in sorted(points, key=lambda p: p["tokens"]):
        r = p[probe]
        lo, _ = wilson(r["acc"] * r["n"], r["n"])
        if lo > r["majority"] and lo > control[probe]["acc"]:
            return p["tokens"]
    return None


def draw(results: Path = RESULTS) -> tuple[Path, Path] | None:
    """The plot (``emergence.png``) and table (``table.md``) from the committed summaries."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from plm_interp.io import atomic_write_bytes, atomic_write_png

    if not (results / "control.json").is_file():
        return None
    control = json.loads((results / "control.json").read_text())
    # only points measured on the control's task share its axis (probe_task)
    points = [p for f in sorted(results.glob("tokens_*.json")) if (p := json.loads(f.read_text())).get("task")
              == control.get("task")]
    if not points:
        return None
    xs = [p["tokens"] / 1e6 for p in points]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for probe in (*V_PROBES, "regret"):
        ys = [100 * (p[probe]["acc"] - p[probe]["majority"]) for p in points]
        line, = ax.plot(xs, ys, "o-", label=probe, ms=3)
        at = first_beating(points, control, probe)
        if at is not None:
            ax.axvline(at / 1e6, color=line.get_color(), ls=":", lw=1)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("tokens seen (M)")
    ax.set_ylabel("probe accuracy - majority guess (points)")
    acc = ax.twinx()
    acc.plot(xs, [100 * _in_dist(p) for p in points], "k--", label="accuracy in distribution")
    acc.set_ylabel("accuracy % (dashed)")
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    ax.set_title("part2_1_emergence: probes along training (dotted: first beats majority and control beyond 95% CI)")
    fig.tight_layout()
    png = results / "emergence.png"
    atomic_write_png(png, fig, dpi=110)
    head = "| tokens (M) | accuracy in dist. % | " + " | ".join(f"{p} (maj / ctrl)" for p in (*V_PROBES, "regret"))
    lines = [head + " |", "|" + "---|" * (2 + len(V_PROBES) + 1)]
    for p in points:
        cells = [f"{100 * p[k]['acc']:.1f} ({100 * p[k]['majority']:.1f} / {100 * control[k]['acc']:.1f})"
                 + (" fit failed" if p[k].get("fit_failed") else "") for k in (*V_PROBES, "regret")]
        lines.append(f"| {p['tokens'] / 1e6:.1f} | {100 * _in_dist(p):.1f} | " + " | ".join(cells) + " |")
    marks = {k: first_beating(points, control, k) for k in (*V_PROBES, "regret")}
    lines += ["", "First point beating majority and control beyond its 95% interval: "
              + ", ".join(f"{k} {'never' if v is None else f'{v / 1e6:.0f}M'}" for k, v in marks.items())]
    table = results / "table.md"
    atomic_write_bytes(table, ("\n".join(lines) + "\n").encode())
    return png, table


def _in_dist(point: dict) -> float:
    rows = [r for r in point["accuracy"] if r["op"] == "all" and r["set"] == "in"]
    return rows[0]["acc"] if rows else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", required=True, help="where part2_1_emergence's runs live")
    ap.add_argument("--results", default=str(RESULTS), help="where the summaries go (committed)")
    ap.add_argument("--draw-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.draw_only:
        analyse(Path(args.runs_dir), Path(args.results))
    drawn = draw(Path(args.results))
    print("drawn:", drawn if drawn else "nothing to draw yet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
