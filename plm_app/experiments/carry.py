"""Carry a campaign's training state from one machine to the next, through the repository.

Why: a run directory lives on one machine, and a campaign that needs more CPU hours than one sitting has (such as
``part2_1_emergence``: about 31 core-hours) would start over on every new machine. :func:`pack` copies what an
exact resume needs into a folder that is committed — per training run: its ``config.json``, ``metrics.jsonl`` and
``experiment_log.jsonl``, its final model once written, and otherwise only its newest valid checkpoint (weights,
optimizer, scheduler, RNG and data position: the resume is exact). :func:`unpack` puts them back into a run
directory on the new machine, never over newer work: a run already there with a newer checkpoint or a final model
is left as it is. Re-issuing the campaign's command then continues from the carried step.

    python -m plm_app.experiments.carry pack   EXPERIMENT --runs-dir RUNS --to results/EXPERIMENT/carry
    python -m plm_app.experiments.carry unpack EXPERIMENT --runs-dir RUNS --to results/EXPERIMENT/carry

Kept checkpoints other than the newest are not carried (a checkpoint of a 1.2M-parameter model with its AdamW
state is about 15 MB): analyses of them must run on the machine that wrote them (``emergence.py`` does, and commits
their small results).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from plm_app.experiments.runner import plan
from plm_interp.training.checkpointing import list_checkpoints, verify

#: the files of a run directory that are carried beside its state (when present)
RUN_FILES = ("config.json", "metrics.jsonl", "experiment_log.jsonl")


def train_runs(experiment: str, runs_dir: str | Path, scale: str = "cpu") -> list[Path]:
    """The run directories of the experiment's training steps, in the order the campaign trains them."""
    from plm_app.experiments import get as get_experiment

    steps = plan(get_experiment(experiment), scale, runs_dir)
    return list(dict.fromkeys(s.directory for s in steps if s.kind == "train"))


def progress(run: Path) -> tuple[int, int]:
    """How far a run directory got: ``(1, 0)`` once its final model exists, else ``(0, newest valid step)``, and
    ``(0, -1)`` with neither (so runs compare by this pair)."""
    if (run / "final" / "config.json").is_file():
        return (1, 0)
    steps = [step for step, d in list_checkpoints(run / "checkpoints") if verify(d) is None]
    return (0, max(steps, default=-1))


def pack(experiment: str, runs_dir: str | Path, dest: str | Path, scale: str = "cpu") -> list[str]:
    """Replace ``dest`` with the resume state of every training run of ``experiment`` under ``runs_dir``; returns
    one line per run saying what was carried. Written beside ``dest`` first and renamed into place, so an
    interrupted pack leaves the previous carry whole."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lines = []
    for run in train_runs(experiment, runs_dir, scale):
        done, step = progress(run)
        if not done and step < 0:
            continue
        out = tmp / run.name
        out.mkdir()
        for name in RUN_FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, out / name)
        if done:
            shutil.copytree(run / "final", out / "final")
            lines.append(f"{run.name}: final model")
        else:
            src = next(d for s, d in list_checkpoints(run / "checkpoints") if s == step)
            shutil.copytree(src, out / "checkpoints" / src.name)
            lines.append(f"{run.name}: checkpoint of step {step:,}")
    (tmp / "carry.json").write_text(json.dumps({"experiment": experiment, "scale": scale, "runs": lines}, indent=1))
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return lines


def unpack(experiment: str, runs_dir: str | Path, src: str | Path, scale: str = "cpu") -> list[str]:
    """Copy each carried run into ``runs_dir`` where it is further along than what is there; returns one line per
    run saying what happened."""
    src = Path(src)
    meta = json.loads((src / "carry.json").read_text())
    if meta["experiment"] != experiment:
        raise ValueError(f"{src}: carries experiment {meta['experiment']!r}, not {experiment!r}")
    lines = []
    for run in train_runs(experiment, runs_dir, scale):
        carried = src / run.name
        if not carried.is_dir():
            continue
        for ckpt in (carried / "checkpoints").glob("step_*"):  # a damaged carry is an error, not "nothing newer"
            if verify(ckpt) is not None:
                raise ValueError(f"{ckpt}: the carried checkpoint does not verify ({verify(ckpt)})")
        if progress(carried) <= progress(run):
            lines.append(f"{run.name}: kept the run directory (as far as the carry or further)")
            continue
        run.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (carried / name).is_file():
                shutil.copy2(carried / name, run / name)
        if (carried / "final").is_dir():
            shutil.rmtree(run / "final", ignore_errors=True)
            shutil.copytree(carried / "final", run / "final")
            lines.append(f"{run.name}: final model restored")
        else:
            (ckpt,) = (carried / "checkpoints").iterdir()
            shutil.copytree(ckpt, run / "checkpoints" / ckpt.name, dirs_exist_ok=True)
            lines.append(f"{run.name}: checkpoint {ckpt.name} restored")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("pack", "unpack"))
    ap.add_argument("experiment")
    ap.add_argument("--runs-dir", required=True)
    ap.add_argument("--to", required=True, help="the carry folder in the repository")
    ap.add_argument("--scale", default="cpu")
    a = ap.parse_args(argv)
    fn = pack if a.action == "pack" else unpack
    for line in fn(a.experiment, a.runs_dir, a.to, a.scale):
        print(f"[carry] {line}")


if __name__ == "__main__":
    main()
