"""The plots several analyses draw: accuracy per op (one line per group) and grouped bars."""
from __future__ import annotations

from typing import Any, Sequence


def plot_by_op(records: list[dict[str, Any]], key: str, title: str):
    """Accuracy per op, one line per value of ``key`` (the Part 2 generation analyses)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name in dict.fromkeys(r[key] for r in records):
        rs = [r for r in records if r[key] == name and r["op"] != "all"]
        ax.plot([r["op"] for r in rs], [100 * r["acc"] for r in rs], "o-", label=str(name))
    ax.set_xlabel("op")
    ax.set_ylabel("accuracy %")
    ax.set_ylim(-3, 103)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def grouped_bars(groups: Sequence[str], series: dict[str, Sequence[float]], ylabel: str, title: str):
    """One group of bars per entry of ``groups``, one bar per ``series`` label (values in percent)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = np.arange(len(groups), dtype=float)
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        ax.bar(x + width * (i - (len(series) - 1) / 2), list(values), width, label=label)
    ax.set_xticks(x, list(groups), fontsize=7, rotation=20)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
