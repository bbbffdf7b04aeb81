"""Turn an experiment into steps (train commands, analyses) and run the ones not done yet.

Resumable by construction: a training step is the ``plm-interp train ... --run-dir DIR --resume`` command (which
continues an interrupted run from its newest checkpoint), and it is skipped once ``DIR/final/config.json`` exists
(written after the weights); an analysis is skipped once its ``result.json`` exists, unless the options it was run
with differ from the spec's (:attr:`Step.stale`: then it runs again and the old result is kept beside it). So re-issuing
``plm-interp experiment NAME`` after an interruption continues where it stopped, across as many sittings as a
campaign needs, and the table is rebuilt from the run directories alone. Every step's wall time is appended to ``DIR/experiment_log.jsonl``.

Parallel by re-issuing too: a step runs holding its run directory's lock (:mod:`plm_interp.training.lock`, the one
``plm-interp train`` takes), so a second ``plm-interp experiment NAME`` started beside the first (another core, GPU
or terminal) takes the steps nobody holds, waits for the ones it needs that another process is running, and never
trains or writes a run directory twice.
"""
from __future__ import annotations

import argparse
import datetime
import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from plm_app.experiments.scales import analysis_options, model_dir, model_ref, run_dir, train_argv
from plm_app.experiments.spec import Analysis, Experiment, Train

LOG = "experiment_log.jsonl"


@dataclass
class Step:
    """One unit of work: a training run (``argv``) or an analysis of one arm's model."""
    kind: str  # "train" | "analyze"
    directory: Path  # the run directory it belongs to
    label: str  # arm label (train steps of a prerequisite stage carry the arm they serve)
    seed: int
    argv: list[str] = field(default_factory=list)
    analysis: Analysis | None = None
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: run directories whose final model this step needs (the run it continues from, or the model it analyses)
    needs: tuple[Path, ...] = ()

    @property
    def ready(self) -> bool:
        """Whether every run this step needs has written its final model."""
        return all((d / "final" / "config.json").is_file() for d in self.needs)

    @property
    def output(self) -> Path:
        """The file whose existence means this step is done."""
        if self.kind == "train":  # save_model writes the weights, then the config that vouches for them
            return self.directory / "final" / "config.json"
        return self.directory / "analyses" / self.analysis.key / "result.json"

    @property
    def done(self) -> bool:
        """Whether :attr:`output` exists (then the step is skipped, unless it is :attr:`stale`)."""
        return self.output.is_file()

    @property
    def stale(self) -> str | None:
        """For a done analysis: the command it was last run with (``DIR/experiment_log.jsonl``) when its options
        differ from the spec's today, else None.

        Why: a spec whose analysis options change (e.g. a probe budget found too small) would otherwise keep its
        old results without a word, and the table would mix two measures. A result with no log record (run by
        hand, or before the log existed) is trusted; the model path and output directory are not compared (they
        move with the runs directory)."""
        if self.kind != "analyze" or not self.done or not (self.directory / LOG).is_file():
            return None
        logged = None
        for line in (self.directory / LOG).read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("kind") == "analyze" and record.get("key") == self.analysis.key:
                logged = record.get("command")
        if logged is None or _measure(self.analysis.name, logged) == _measure(self.analysis.name, self.describe()):
            return None
        return logged

    def describe(self) -> str:
        """The equivalent shell command (``plm-interp train ...`` or ``plm-interp analyze ...``)."""
        if self.kind == "train":
            return "plm-interp " + " ".join(_quote(a) for a in self.argv)
        opts = "".join(f" --set {_quote(f'{k}={json.dumps(v)}')}" for k, v in self.options.items()
                       if k != "progress")
        return f"plm-interp analyze {self.analysis.name} --model {self.model}{opts} --out {self.output.parent}"


def _measure(name: str, command: str) -> dict[str, Any]:
    """The options an analysis command runs with, the analysis's defaults filled in: what defines the measure (so
    ``--set seed=0`` and no ``--set seed`` are the same measure; the model path and output directory are not in it)."""
    import shlex

    import analyses

    params = inspect.signature(analyses.get(name)).parameters
    opts = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    words = shlex.split(command)
    for flag, value in zip(words, words[1:]):
        if flag == "--set":
            key, _, text = value.partition("=")
            opts[key] = json.loads(text)
    opts.pop("progress", None)
    return opts


def _supersede(directory: Path) -> Path:
    """Move an analysis's old result aside (``KEY.superseded-N``, the first free N), kept for comparison."""
    k = 1
    while (target := directory.with_name(f"{directory.name}.superseded-{k}")).exists():
        k += 1
    directory.rename(target)
    return target


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def plan(exp: Experiment, scale: str, runs_dir: str | Path, arms: list[str] | None = None) -> list[Step]:
    """Every step of ``exp`` at ``scale``, in order (a stage before the run that starts from it), deduplicated.

    Seed-major: every arm's first seed comes before any arm's second, so a campaign stopped part-way already
    holds complete comparisons (all arms at the same seeds) rather than one arm at every seed. ``arms``: only the
    steps these arms need (an arm added later, or one arm per machine); the table still shows every arm."""
    runs_dir = Path(runs_dir)
    labels = [a.label for a in exp.arms]
    for label in arms or ():
        if label not in labels:
            raise ValueError(f"arm = {label!r} is not an arm of {exp.name}; its arms: {', '.join(labels)}")
    steps, seen = [], set()
    for seed in exp.seeds_at(scale):
        for arm in (a for a in exp.arms if not arms or a.label in arms):
            src = arm.source(scale)
            if isinstance(src, Train):
                for run in src.chain():
                    d = run_dir(runs_dir, run.name, seed)
                    if d not in seen:
                        seen.add(d)
                        needs = (run_dir(runs_dir, run.after.name, seed),) if isinstance(run.after, Train) else ()
                        steps.append(Step("train", d, arm.label, seed, argv=train_argv(run, scale, seed, runs_dir),
                                          needs=needs))
            for a in exp.analyses_for(arm.label):
                steps.append(Step("analyze", model_dir(runs_dir, src, seed), arm.label, seed, analysis=a,
                                  model=model_ref(runs_dir, src, seed), options=analysis_options(a, scale, seed),
                                  needs=(model_dir(runs_dir, src, seed),) if isinstance(src, Train) else ()))
    return steps


def _log(directory: Path, record: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOG, "a") as f:
        f.write(json.dumps(record) + "\n")


def _train(argv: list[str]) -> None:
    from plm_app.commands import train as train_cli

    parser = argparse.ArgumentParser(prog="plm-interp")
    train_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    if code:
        raise RuntimeError(f"plm-interp {' '.join(argv)} exited with {code}")


def _analyze(step: Step) -> None:
    import analyses
    from plm_interp.pretrained import load_model_ref

    model = load_model_ref(step.model)
    result = analyses.run(step.analysis.name, model, None, **step.options)
    result.save(step.output.parent)


def execute(steps: list[Step], report: Callable[[str], None] = print, poll: float = 30.0,
            wait: bool = True) -> dict[str, int]:
    """Run every step not done yet, in order; returns counts of ``run``, ``skipped`` and ``left`` steps.

    A step whose run directory another process holds, or that needs a run still in another process's hands, is
    put off and tried again after the other steps (every ``poll`` seconds once only such steps are left), so
    several processes can share one campaign. A step is checked again once its lock is held: one finished in the
    meantime by another process is skipped. ``wait=False``: once only such steps are left, leave them to the
    processes that hold them (counted as ``left``) and return, so a queue of experiments moves on to the next."""
    from plm_interp.training import lock

    counts = {"run": 0, "skipped": 0, "left": 0}
    pending, told, waiting = list(enumerate(steps, 1)), set(), False
    while pending:
        later, held_elsewhere = [], False
        for i, step in pending:
            what = f"[{i}/{len(steps)}] {step.kind} {step.directory.name}" + (
                f" {step.analysis.key}" if step.analysis else "")
            if not step.ready:
                later.append((i, step))
                continue
            if step.done and step.stale is None:  # the common case: no lock needed to skip
                counts["skipped"] += 1
                report(f"{what}: done, skipped")
                continue
            try:
                held = lock.acquire(step.directory)
            except lock.RunDirLocked as exc:
                held_elsewhere = True
                if i not in told:  # once per step, not at every poll
                    told.add(i)
                    report(f"{what}: put off, {exc}".split("; wait for it")[0])
                later.append((i, step))
                continue
            try:
                counts[_run_step(step, what, report)] += 1
            finally:
                lock.release(held)
        if later and len(later) == len(pending):  # nothing could start: the rest waits on other processes
            if not held_elsewhere:  # needs come first in the plan, so only a run held elsewhere can block one
                raise RuntimeError(f"{len(later)} step(s) wait for runs that no process is running: "
                                   + ", ".join(str(d) for _, st in later for d in st.needs if not st.ready))
            if not wait:
                counts["left"] = len(later)
                report(f"{len(later)} step(s) left to the processes that hold their runs")
                break
            if not waiting:
                waiting = True
                report(f"waiting for other processes: {len(later)} step(s) left, checking every {poll:g} s")
            time.sleep(poll)
        pending = later
    return counts


def _run_step(step: Step, what: str, report: Callable[[str], None]) -> str:
    """Run one step whose directory lock is held; ``"skipped"`` if it turns out done (and current) by now."""
    old = step.stale
    if old is not None:
        kept = _supersede(step.output.parent)
        report(f"{what}: its options changed since it ran ({old}); the old result is kept in "
               f"{kept.name}, running it again")
    elif step.done:
        report(f"{what}: done, skipped")
        return "skipped"
    report(f"{what}: {step.describe()}")
    t0 = time.perf_counter()
    _train(step.argv) if step.kind == "train" else _analyze(step)
    seconds = time.perf_counter() - t0
    _log(step.directory, {"kind": step.kind, "key": step.analysis.key if step.analysis else None,
                          "seconds": round(seconds, 2), "command": step.describe(),
                          "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    report(f"{what}: finished in {seconds:.1f} s")
    return "run"
