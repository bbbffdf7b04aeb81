"""The result object every analysis returns: numbers first, then views of them.

Subclasses define ``rows()`` (the table, one dict per row) and ``plot()``; ``to_dict()``, ``table()`` and
``save(dir)`` come for free. ``save`` writes ``result.json``, ``table.md`` and ``plot.png`` atomically.
"""
from __future__ import annotations

import abc
import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plm_interp.io import atomic_write_bytes, atomic_write_json


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


@dataclasses.dataclass
class AnalysisResult(abc.ABC):
    """Base class: a dataclass of numbers with ``.table()``, ``.to_dict()``, ``.plot()`` and ``.save(dir)``."""

    @abc.abstractmethod
    def rows(self) -> list[dict[str, Any]]:
        """The table: one dict per row."""

    @abc.abstractmethod
    def plot(self):
        """A matplotlib figure of the result."""

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON (tensors and arrays as lists, non-finite floats as ``None``), tagged with the
        class name under ``"analysis"``; what :meth:`save` writes to ``result.json``."""
        return {"analysis": type(self).__name__,
                **{f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}}

    def table(self, digits: int = 4) -> str:
        """The rows as a Markdown table."""
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
        """Write ``result.json``, ``table.md`` and ``plot.png`` into ``directory``; returns it."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        directory = Path(directory)
        atomic_write_json(directory / "result.json", self.to_dict())
        atomic_write_bytes(directory / "table.md", (self.table() + "\n").encode())
        fig = self.plot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(directory / "plot.png", buf.getvalue())
        return directory
