"""The experiment's table, rebuilt from run directories alone (nothing is kept in memory between sittings).

One row per arm; per metric one cell "ours" (mean over the seeds that finished, with min–max and n when more
than one, and the controls in parentheses) beside the paper's figure; then the tokens each seed's model saw
(all its stages) and the wall time spent on the arm (training stages and this experiment's analyses, all seeds).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyses.result import wilson
from plm_app.experiments.runner import LOG
from plm_app.experiments.scales import model_dir, run_dir
from plm_app.experiments.spec import Experiment, Metric, Shipped, Source, Train

NOT_RUN = "not yet run"
NOT_APPLICABLE = "n/a"
TABLES = "_tables"


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # one per finished seed
    counts: list[int] = field(default_factory=list)  # items behind each value (when the metric says)
    controls: dict[str, list[float]] = field(default_factory=dict)
    applies: bool = True  # False where the metric's analysis is not run on the arm (generation on an encoder)

    @staticmethod
    def fmt(values: list[float], m: Metric, counts: list[int] | None = None) -> str:
        """Mean, and (min–max, n) when there is more than one value, in the metric's units; one seed's proportion
        with its item count gets its 95% Wilson interval instead (a single run still carries its uncertainty)."""
        scale = 100 if m.percent else 1
        if len(values) == 1 and m.percent and counts and len(counts) == 1 and counts[0] > 0:
            lo, hi = wilson(values[0] * counts[0], counts[0])
            return f"{100 * values[0]:.{m.digits}f} (95% CI {100 * lo:.{m.digits}f}–{100 * hi:.{m.digits}f}, " \
                   f"{counts[0]} items)"
        vs = [v * scale for v in values]
        mean = sum(vs) / len(vs)
        d = m.digits
        plain = abs(mean) >= 10 ** -d or mean == 0
        text = f"{mean:.{d}f}" if plain else f"{mean:.2e}"
        if len(vs) > 1:
            lo, hi = min(vs), max(vs)
            text += f" ({lo:.{d}f}–{hi:.{d}f}, n={len(vs)})" if plain else f" ({lo:.2e}–{hi:.2e}, n={len(vs)})"
        return text

    def render(self, m: Metric) -> str:
        """The cell's text: ours, then the controls; "not yet run" / "n/a" when there is nothing to show."""
        if not self.applies:
            return NOT_APPLICABLE
        if not self.values:
            return NOT_RUN
        text = self.fmt(self.values, m, self.counts)
        ctl = [f"{name} {self.fmt(v, m)}" for name, v in self.controls.items() if v]
        return text + (f"; {', '.join(ctl)}" if ctl else "")

    def mean(self, m: Metric) -> float | None:
        """Mean over the seeds, in the metric's units (None when nothing finished)."""
        return sum(self.values) / len(self.values) * (100 if m.percent else 1) if self.values else None


@dataclass
class Table:
    experiment: Experiment
    scale: str
    cells: dict[str, dict[str, Cell]]  # arm label -> metric label -> cell
    tokens: dict[str, list[int]]  # arm label -> tokens per finished seed
    seconds: dict[str, float]  # arm label -> wall seconds, all seeds
    seeds_done: dict[str, int]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per arm: ours and the paper's per metric, seeds done, tokens, wall time."""
        out = []
        for arm in self.experiment.arms:
            row: dict[str, Any] = {"arm": arm.label}
            for m in self.experiment.metrics:
                row[f"{m.label} (ours)"] = self.cells[arm.label][m.label].render(m)
                row[f"{m.label} (paper)"] = m.paper.get(arm.label, "—")
            n = len(self.experiment.seeds_at(self.scale))
            row["seeds done"] = f"{self.seeds_done[arm.label]}/{n}"
            toks = self.tokens[arm.label]
            row["tokens per model"] = _count(sum(toks) / len(toks)) if toks else "—"
            row["wall time"] = _duration(self.seconds[arm.label]) if self.seconds[arm.label] else "—"
            out.append(row)
        return out

    def markdown(self) -> str:
        """The table with its title, the paper's reference and the note on how our setting differs."""
        rows = self.rows()
        cols = list(rows[0])
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
        exp = self.experiment
        head = [f"# {exp.title}", "", f"Experiment `{exp.name}`, scale `{self.scale}`. Paper: {exp.paper_ref}."]
        if exp.note:
            head += ["", exp.note]
        return "\n".join(head + [""] + lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """Rows plus the raw per-seed values (what ``table.json`` holds)."""
        return {"experiment": self.experiment.name, "scale": self.scale, "rows": self.rows(),
                "values": {a: {m: {"values": c.values, "controls": c.controls} for m, c in ms.items()}
                           for a, ms in self.cells.items()},
                "tokens": self.tokens, "seconds": self.seconds}

    def plot(self):
        """One bar chart per metric: ours (mean over seeds, the seeds' range as an error bar) per arm, each
        control (random-init, majority) as a marker beside it, the paper's figure as a black tick."""
        import matplotlib.pyplot as plt

        metrics = self.experiment.metrics
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
        labels = [a.label for a in self.experiment.arms]
        # one marker per control name across every panel, so "x" means the same control everywhere
        names = sorted({n for a in labels for m in metrics for n in self.cells[a][m.label].controls})
        markers = dict(zip(names, ("o", "x", "s", "^", "v", "D")))
        for ax, m in zip(axes[0], metrics):
            scale = 100 if m.percent else 1
            cells = [self.cells[a][m.label] for a in labels]
            ours = [c.mean(m) for c in cells]
            lo = [(v - scale * min(c.values)) if v is not None else 0 for v, c in zip(ours, cells)]
            hi = [(scale * max(c.values) - v) if v is not None else 0 for v, c in zip(ours, cells)]
            ax.bar(range(len(labels)), [v if v is not None else 0 for v in ours], color="tab:blue", label="ours",
                   yerr=[lo, hi], capsize=3)
            for name in sorted({n for c in cells for n in c.controls} & markers.keys()):
                marker = markers[name]
                pts = [(i, scale * sum(c.controls[name]) / len(c.controls[name])) for i, c in enumerate(cells)
                       if c.controls.get(name)]
                if pts:
                    ax.plot(*zip(*pts), marker, color="dimgray", linestyle="none", label=name)
            paper = [_number(m.paper.get(a)) for a in labels]
            xs = [i for i, v in enumerate(paper) if v is not None]
            if xs:
                ax.plot(xs, [paper[i] for i in xs], "k_", markersize=18, mew=2, label="paper")
            ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
            ax.set_title(m.label, fontsize=8)
        legend = {}  # every panel's entries, once each: the controls may appear only in later panels
        for ax in axes[0]:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        axes[0][0].legend(legend.values(), legend.keys(), fontsize=7)
        fig.suptitle(f"{self.experiment.name} ({self.scale})", fontsize=9)
        fig.tight_layout()
        return fig


def _number(text: str | None) -> float | None:
    """The first number in a paper cell ("≈ 80", "up to 94.5", "99+ (op=23: 94.7)" → 80, 94.5, 99), for the plot."""
    found = re.search(r"\d+(?:\.\d+)?(?:e-?\d+)?", str(text)) if text is not None else None
    return float(found.group()) if found else None


def _count(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _result(directory: Path, key: str) -> dict | None:
    path = directory / "analyses" / key / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _safe(extract, result: dict) -> float | None:
    try:
        v = extract(result)
    except (KeyError, IndexError, StopIteration, TypeError):
        return None
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _tokens(directory: Path) -> int | None:
    path = directory / "metrics.jsonl"
    if not path.is_file():
        return None
    toks = [json.loads(line).get("tokens") for line in path.read_text().splitlines() if line.strip()]
    toks = [t for t in toks if t is not None]
    return max(toks) if toks else None


def _training_seconds(directory: Path) -> float | None:
    """Training time over every sitting of a run, by the trainer's own clock: each ``metrics.jsonl`` record's
    tokens since the previous one over its ``tokens_per_s``; None if the records carry no rate.

    Why not the experiment log alone: it holds the last sitting's seconds only, so a run interrupted and resumed
    (a campaign spanning sessions) would show a fraction of its cost. A resumed run's records restart at its
    checkpoint, so work lost to the interruption is not counted."""
    path = directory / "metrics.jsonl"
    if not path.is_file():
        return None
    total, previous, timed = 0.0, 0, False
    for line in path.read_text().splitlines():
        rec = json.loads(line) if line.strip() else {}
        if "tokens" not in rec:
            continue
        if rec.get("tokens_per_s"):
            total += (rec["tokens"] - previous) / rec["tokens_per_s"]
            timed = True
        previous = rec["tokens"]
    return total if timed else None


def _seconds(directory: Path, keys: set[str] | None) -> float:
    """Wall seconds spent on a run directory: its training (:func:`_training_seconds`, else the logged sittings)
    and its analyses named in ``keys`` (None: all; the experiment log's records)."""
    trained = _training_seconds(directory)
    path = directory / LOG
    total = trained or 0.0
    if not path.is_file():
        return total
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] == "train":
            total += rec["seconds"] if trained is None else 0.0
        elif keys is None or rec.get("key") in keys:
            total += rec["seconds"]
    return total


def build(exp: Experiment, scale: str, runs_dir: str | Path) -> Table:
    """Read every arm's run directories under ``runs_dir``; missing results are cells marked "not yet run"."""
    runs_dir = Path(runs_dir)
    cells, tokens, seconds, done = {}, {}, {}, {}
    keys = {a.key for a in exp.analyses}
    for arm in exp.arms:
        src: Source = arm.source(scale)
        cells[arm.label] = {m.label: Cell() for m in exp.metrics}
        tokens[arm.label], seconds[arm.label], done[arm.label] = [], 0.0, 0
        for seed in exp.seeds_at(scale):
            d = model_dir(runs_dir, src, seed)
            complete = True
            applies = {a.key for a in exp.analyses_for(arm.label)}
            for m in exp.metrics:
                if m.analysis not in applies:
                    cells[arm.label][m.label].applies = False
                    continue
                result = _result(d, m.analysis)
                value = _safe(m.extract, result) if result is not None else None
                if value is None:
                    complete = False
                    continue
                cell = cells[arm.label][m.label]
                cell.values.append(value)
                count = _safe(m.count, result) if m.count is not None else None
                if count is not None:
                    cell.counts.append(int(count))
                for name, ex in m.controls.items():
                    v = _safe(ex, result)
                    if v is not None:
                        cell.controls.setdefault(name, []).append(v)
            done[arm.label] += complete
            seconds[arm.label] += _seconds(d, keys)
            if isinstance(src, Train):
                stages = [run_dir(runs_dir, r.name, seed) for r in src.chain()]
                seconds[arm.label] += sum(_seconds(s, set()) for s in stages[:-1])
                toks = [_tokens(s) for s in stages]
                if all(t is not None for t in toks) and (stages[-1] / "final").is_dir():
                    tokens[arm.label].append(sum(toks))
            elif isinstance(src, Shipped):
                pass  # a shipped model's tokens are on its card
    return Table(exp, scale, cells, tokens, seconds, done)


def write(table: Table, runs_dir: str | Path) -> Path:
    """``RUNS_DIR/_tables/<experiment>/``: ``table.md``, ``table.json`` and ``plot.png``; returns the directory."""
    from plm_interp.io import atomic_write_bytes, atomic_write_json, atomic_write_png

    out = Path(runs_dir) / TABLES / table.experiment.name
    atomic_write_bytes(out / "table.md", table.markdown().encode())
    atomic_write_json(out / "table.json", table.to_dict())
    import matplotlib

    matplotlib.use("Agg", force=False)
    atomic_write_png(out / "plot.png", table.plot(), dpi=100)
    return out
