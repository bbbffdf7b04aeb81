"""The result object every analysis returns: numbers first, then views of them.

Subclasses define ``rows()`` (the table, one dict per row) and usually ``plot()`` (without one, the headline
figures are drawn); ``to_dict()``, ``table()``, ``to_pandas()``, ``save(dir)`` and the notebook display (a short
``repr``, ``_repr_html_`` / ``_repr_markdown_`` with the headline table and the plot; ``analyses/display.py``)
come for free. ``save`` writes ``table.md``, ``plot.png`` and last ``result.json`` (the done-marker), each
atomically.

Headline figures. A single accuracy means little on its own: the paper puts every probe figure beside the
majority guess and the same probe on a random-init model (Part 2.1 Fig. 7), and a figure from a few hundred
examples carries sampling noise of several points. So a subclass may return :func:`headline` records from
``headlines()``: each carries the figure, its random-init control, the majority guess, ``n`` and either the spread
over seeds or a 95% Wilson interval, plus a plain-words verdict on whether it beats its control. ``table()``
prints them first, side by side; :func:`~analyses.display.draw_headlines` draws them (figure, CI bar, control and majority
marks). A detection figure (catch rate) carries its false-alarm rate in the same record.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

# draw_headlines is re-exported: the analyses draw their headline figures with it from here
from analyses.display import default_plot, draw_headlines, short_repr, to_html, to_markdown, to_pandas  # noqa: F401
from plm_interp.io import atomic_write_bytes, atomic_write_json, atomic_write_png


def _plain(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().tolist()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


Z95 = 1.959963984540054


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion ``k / n`` (NaNs for ``n = 0``).

    Chosen over the normal approximation because figures near 0 or 1 (a probe at 99%) are common here and the
    Wald interval collapses there."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def headline(metric: str, value: float, n: int, control: float | None = None, majority: float | None = None,
             seeds: list[float] | None = None, control_n: int | None = None, false_alarm: float | None = None,
             n_false_alarm: int | None = None, control_false_alarm: float | None = None,
             higher_is_better: bool = True, control_name: str = "random-init control",
             ci: tuple[float, float] | None = None, verdict_text: str | None = None,
             percent: bool = True) -> dict[str, Any]:
    """One headline figure (a proportion in [0, 1]) with everything needed to judge it.

    ``seeds`` (>= 3 values, ``value`` among them or their mean) gives the spread; otherwise the 95% Wilson interval
    of ``value`` over ``n`` is the error bar. ``verdict`` says in plain words whether the figure beats its control:
    "beats control" only when the control lies outside the figure's interval (CI or seed range) on the right side.
    """
    if seeds is not None and len(seeds) < 3:
        raise ValueError(f"field 'seeds' has {len(seeds)} values: a spread needs >= 3 seeds")
    lo, hi = ci if ci is not None else (min(seeds), max(seeds)) if seeds else wilson(value * n, n)
    rec: dict[str, Any] = {"metric": metric, "value": value, "lo": lo, "hi": hi, "n": n,
                           "spread": "seed range" if seeds else "95% CI", "control": control,
                           "control_name": control_name, "majority": majority, "percent": percent}
    if seeds:
        rec["seeds"] = list(seeds)
    if false_alarm is not None:
        rec.update(false_alarm=false_alarm, n_false_alarm=n_false_alarm, control_false_alarm=control_false_alarm)
    rec["verdict"] = verdict_text if verdict_text is not None else verdict(rec, higher_is_better)
    return rec


def verdict(h: dict[str, Any], higher_is_better: bool = True) -> str:
    """Plain words: does the figure beat its control (and the majority guess), beyond its error bar?

    A detection figure (with a false-alarm rate) is compared with its control on catch rate minus false-alarm
    rate (Youden's J): a detector that fires on everything catches every mistake and is worth nothing."""
    words = []
    fa, cfa = h.get("false_alarm"), h.get("control_false_alarm")
    if fa is not None and h.get("control") is not None and cfa is not None:
        j, jc = h["value"] - fa, h["control"] - cfa
        nf = max(h.get("n_false_alarm") or 1, 1)
        half = Z95 * math.sqrt(h["value"] * (1 - h["value"]) / max(h["n"], 1) + fa * (1 - fa) / nf)
        rel = ("beats" if j - half > jc else "is BELOW" if j + half < jc else "does NOT beat (within the error bar)")
        words.append(f"catch minus false-alarm rate {100 * j:.1f} points (95% CI +-{100 * half:.1f}) {rel} the "
                     f"random-init control's {100 * jc:.1f}")
        return "; ".join(words)
    for name in ("control", "majority"):
        ref = h.get(name)
        if ref is None or not math.isfinite(h["value"]):
            continue
        above = h["lo"] > ref if higher_is_better else h["hi"] < ref
        below = h["hi"] < ref if higher_is_better else h["lo"] > ref
        label = h.get("control_name", "random-init control") if name == "control" else "majority guess"
        words.append(f"beats the {label}" if above else f"BELOW the {label}" if below
                     else f"does NOT beat the {label} (within the error bar)")
    return "; ".join(words) if words else "no control"


def headline_table(hs: list[dict[str, Any]], digits: int = 1) -> str:
    """Headline figures as a Markdown table (percentages): figure [lo, hi], control, majority, n, verdict."""
    lines = ["| figure | value (% unless noted) | spread | control (which) | majority | false alarm (control) | n | "
             "verdict |", "|---|---|---|---|---|---|---|---|"]
    for h in hs:
        pc = h.get("percent", True)
        pct = lambda v: ("" if v is None or (isinstance(v, float) and not math.isfinite(v))
                         else f"{100 * v:.{digits}f}" if pc else f"{v:.4f}")
        fa = "" if h.get("false_alarm") is None else f"{pct(h['false_alarm'])} ({pct(h.get('control_false_alarm'))})"
        lines.append(f"| {h['metric']} | {pct(h['value'])} | [{pct(h['lo'])}, {pct(h['hi'])}] {h['spread']} | "
                     f"{pct(h['control'])} ({h.get('control_name', '')}) | {pct(h['majority'])} | {fa} | {h['n']} | {h['verdict']} |")
    return "\n".join(lines)


@dataclasses.dataclass
class AnalysisResult(abc.ABC):
    """Base class: a dataclass of numbers with ``.table()``, ``.to_dict()``, ``.plot()`` and ``.save(dir)``."""

    @abc.abstractmethod
    def rows(self) -> list[dict[str, Any]]:
        """The table: one dict per row."""

    def plot(self):
        """A matplotlib figure of the result. Subclasses draw their own; this default (a class that defines none
        still displays and saves) draws the headline figures, else the rows' last numeric column."""
        return default_plot(self)

    # -- notebook display (analyses/display.py): a short repr, the table and the plot inline, a DataFrame ---------
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # @dataclass adds a field-by-field __repr__ to every subclass (52,000 characters of tensors for
        # attention_boundary); one set here first is kept by @dataclass, unless the subclass writes its own
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = AnalysisResult.__repr__

    def __repr__(self) -> str:
        return short_repr(self)

    def _repr_html_(self) -> str:
        """Jupyter's rich view: the headline table, the rows and the plot (inline PNG)."""
        return to_html(self)

    def _repr_markdown_(self) -> str:
        """The same view in Markdown (for front ends that render Markdown rather than HTML)."""
        return to_markdown(self)

    def to_pandas(self, which: str = "rows"):
        """:meth:`rows` (``which="headlines"``: the headline figures) as a ``pandas.DataFrame``; pandas is optional
        and its absence is named."""
        return to_pandas(self, which)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON (tensors and arrays as lists, non-finite floats as ``None``), tagged with the
        class name under ``"analysis"``; what :meth:`save` writes to ``result.json``."""
        return {"analysis": type(self).__name__,
                **{f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}}

    def headlines(self) -> list[dict[str, Any]]:
        """The headline figures (see :func:`headline`); none by default."""
        return []

    def table(self, digits: int = 4) -> str:
        """The headline figures side by side with their controls (when there are any), then the rows."""
        heads = self.headlines()
        rows_md = self._rows_table(digits)
        return f"{headline_table(heads)}\n\n{rows_md}" if heads else rows_md

    def _rows_table(self, digits: int) -> str:
        rows = self.rows()
        if not rows:
            return "(empty)"
        cols = list(dict.fromkeys(k for r in rows for k in r))
        def fmt(v: Any) -> str:
            if isinstance(v, float):
                return f"{v:.{digits}g}"
            if isinstance(v, dict):  # e.g. counts per kind: "letter_reused 3, not_ready 1"
                return ", ".join(f"{k} {fmt(x)}" for k, x in v.items())
            return "" if v is None else str(v)

        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"{type(self).__name__}\n{self.table()}"

    def save(self, directory: str | Path) -> Path:
        """Write ``table.md``, ``plot.png`` and, last, ``result.json`` into ``directory``; returns it.

        ``result.json`` is the done-marker (the experiment runner skips an analysis that has one), so it is
        written after every other artefact: a kill, a full disk or a plotting error part-way leaves no marker
        and the analysis is redone, never skipped with its plot missing. Everything is computed before the
        first write, each file is written atomically."""
        import matplotlib

        matplotlib.use("Agg", force=False)

        directory = Path(directory)
        record, table = self.to_dict(), self.table() + "\n"
        atomic_write_bytes(directory / "table.md", table.encode())
        atomic_write_png(directory / "plot.png", self.plot(), dpi=110)
        atomic_write_json(directory / "result.json", record)  # the done-marker: last
        return directory
