"""How an analysis result shows itself in Jupyter and pandas (used by :class:`analyses.result.AnalysisResult`).

A result holds tensors (a probe's weights, per-head statistics), so the dataclass ``repr`` that Jupyter prints for
the last line of a cell runs to tens of thousands of characters. Instead, like pandas and scikit-learn objects, a
result has a one-line ``repr`` and rich views: ``_repr_html_`` / ``_repr_markdown_`` show the headline table
(figure, control, majority guess, n, verdict), the rows (the first :data:`MAX_ROWS`) and the plot as an inline
PNG. A plot that fails to draw is reported in the view instead of hiding the table.
"""
from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np

MAX_ROWS = 30
HEADLINE_COLUMNS = ("metric", "value", "lo", "hi", "spread", "control", "control_name", "majority", "n", "verdict")


def short_repr(result) -> str:
    """``ClassName(3 headline figures, 12 rows: layer, head, acc)``: what the object is, never its tensors."""
    parts = []
    heads = _safe(result.headlines, [])
    if heads:
        first = heads[0]
        parts.append(f"{len(heads)} headline figure{'s' * (len(heads) != 1)}, first {first['metric']} = "
                     f"{_fmt(first['value'], first.get('percent', True))}")
    rows = _safe(result.rows, [])
    cols = list(dict.fromkeys(k for r in rows for k in r))
    parts.append(f"{len(rows)} row{'s' * (len(rows) != 1)}" + (f": {', '.join(map(str, cols[:6]))}"
                                                                + (", ..." if len(cols) > 6 else "") if cols else ""))
    return f"{type(result).__name__}({'; '.join(parts)})"


def plot_png(result, dpi: int = 80) -> tuple[bytes | None, str | None]:
    """The result's plot as PNG bytes (the figure closed afterwards, so an inline backend does not show it
    twice), or None and the reason it could not be drawn."""
    try:
        import matplotlib.pyplot as plt

        fig = result.plot()
        if fig is None:
            return None, "plot() returned no figure"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue(), None
    except Exception as exc:  # noqa: BLE001 — the table must still show; the reason is displayed
        return None, f"plot() failed: {type(exc).__name__}: {exc}"


def to_html(result) -> str:
    heads = _safe(result.headlines, [])
    rows = _safe(result.rows, [])
    out = [f"<div><strong>{html.escape(type(result).__name__)}</strong>"]
    if heads:
        out.append("<p>Headline figures</p>" + _html_table(_headline_cells(heads)))
    out.append(f"<p>Rows ({len(rows)})</p>" + (_html_table(_row_cells(rows)) if rows else "<p>(empty)</p>"))
    png, why = plot_png(result)
    out.append(f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}"/>' if png
               else f"<p><em>{html.escape(why)}</em></p>")
    return "\n".join(out) + "</div>"


def to_markdown(result) -> str:
    heads = _safe(result.headlines, [])
    rows = _safe(result.rows, [])
    out = [f"**{type(result).__name__}**", ""]
    if heads:
        out += ["Headline figures", "", _md_table(_headline_cells(heads)), ""]
    out += [f"Rows ({len(rows)})", "", _md_table(_row_cells(rows)) if rows else "(empty)", ""]
    png, why = plot_png(result)
    out.append(f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})" if png else f"*{why}*")
    return "\n".join(out)


def to_pandas(result, which: str = "rows"):
    """``rows()`` (or, with ``which="headlines"``, the headline figures) as a ``pandas.DataFrame``."""
    if which not in ("rows", "headlines"):
        raise ValueError(f"which must be 'rows' or 'headlines', got {which!r}")
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas() needs pandas, which is not installed: `pip install pandas`; result.rows() "
                          "gives the same table as a list of dicts") from None
    return pd.DataFrame(result.rows() if which == "rows" else result.headlines())


def default_plot(result):
    """The plot of a result class that defines none: its headline figures (see ``draw_headlines``) when it has
    any, else its first numeric column by row, else a figure saying there is nothing to draw."""
    import matplotlib.pyplot as plt

    heads = _safe(result.headlines, [])
    fig, ax = plt.subplots(figsize=(max(3.0, 0.9 * len(heads) + 2) if heads else 4.0, 3.0))
    if heads:
        draw_headlines(ax, heads)
        return fig
    rows = _safe(result.rows, [])
    cols = [c for c in dict.fromkeys(k for r in rows for k in r)
            if all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows)]
    if rows and cols:
        ax.plot(range(len(rows)), [r[cols[-1]] for r in rows], "o-")
        ax.set_xlabel("row")
        ax.set_ylabel(str(cols[-1]))
    else:
        ax.text(0.5, 0.5, f"{type(result).__name__}: nothing to plot", ha="center", va="center")
        ax.set_axis_off()
    return fig


# -- helpers ---------------------------------------------------------------------------------------------------
def _safe(fn, default):
    try:
        return fn()
    except Exception:  # noqa: BLE001 — a display must not raise
        return default


def _fmt(v: Any, percent: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{100 * v:.1f}%" if percent else f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return f"[{len(v)} values]"
    return str(v)


def _headline_cells(heads: list[dict[str, Any]]) -> list[list[str]]:
    table = [["figure", "value", "spread", "control", "majority", "n", "verdict"]]
    for h in heads:
        pc = h.get("percent", True)
        table.append([str(h["metric"]), _fmt(h["value"], pc),
                      f"[{_fmt(h.get('lo'), pc)}, {_fmt(h.get('hi'), pc)}] {h.get('spread', '')}",
                      f"{_fmt(h.get('control'), pc)} ({h.get('control_name', '')})" if h.get("control") is not None
                      else "", _fmt(h.get("majority"), pc), str(h.get("n", "")), str(h.get("verdict", ""))])
    return table


def _row_cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    table = [[str(c) for c in cols]] + [[_fmt(r.get(c)) for c in cols] for r in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        table.append([f"... {len(rows) - MAX_ROWS} more rows (to_pandas() or rows() has them all)"]
                     + [""] * (len(cols) - 1))
    return table


def _html_table(cells: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(cells: list[list[str]]) -> str:
    esc = lambda c: c.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, cells[0])) + " |", "|" + "---|" * len(cells[0])]
    return "\n".join(lines + ["| " + " | ".join(map(esc, r)) + " |" for r in cells[1:]])


def draw_headlines(ax, hs: list[dict[str, Any]]) -> None:
    """Bars of the headline figures with their error bars, the control (x) and the majority guess (_) beside."""
    x = np.arange(len(hs))
    k = 100 if all(h.get("percent", True) for h in hs) else 1
    vals = np.array([k * h["value"] for h in hs], dtype=float)
    err = np.clip(np.array([[k * (h["value"] - h["lo"]) for h in hs], [k * (h["hi"] - h["value"]) for h in hs]],
                           dtype=float), 0, None)  # a pooled figure may sit just outside its seeds' range
    ax.bar(x, vals, 0.6, yerr=np.nan_to_num(err), capsize=3, color="tab:blue", label="figure (error bar)")
    ctl = [(i, k * h["control"]) for i, h in enumerate(hs) if h.get("control") is not None]
    maj = [(i, k * h["majority"]) for i, h in enumerate(hs) if h.get("majority") is not None]
    fa = [(i, k * h["false_alarm"]) for i, h in enumerate(hs) if h.get("false_alarm") is not None]
    if ctl:
        ax.plot(*zip(*ctl), "x", color="tab:red", ms=9, mew=2, label=hs[ctl[0][0]].get("control_name", "control"))
    if maj:
        ax.plot(*zip(*maj), "_", color="black", ms=18, mew=2, label="majority guess")
    if fa:
        ax.plot(*zip(*fa), "v", color="tab:orange", ms=7, label="false-alarm rate")
    ax.set_xticks(x, [f"{h['metric']}\nn={h['n']}" for h in hs], fontsize=6, rotation=20, ha="right")
    ax.set_ylabel("%" if k == 100 else "value")
    ax.legend(fontsize=6)
