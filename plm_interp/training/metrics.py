"""Metrics: one JSON object per line in ``run_dir/metrics.jsonl`` (and TensorBoard scalars if asked for).

JSONL because it survives a kill (at worst the last line is cut, and it is dropped on resume), appends
cheaply, and loads with one line of pandas or ``json``. On resume, records after the resumed step are
removed so the file reads as one uninterrupted run.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from plm_interp.io import atomic_write_bytes, write_error

METRICS = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a metrics file (a cut-off last line, the trace of a kill, is skipped).

    A damaged complete line (not UTF-8, not a JSON object) raises ``ValueError`` naming the file and the line:
    skipping it would drop records without a word, and a resume rewrites the file from what is read here."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    records = []
    if not path.is_file():
        return records
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, 1):
        last = number == len(lines)  # no newline after it: cut off by a kill mid-write
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            if last:
                continue
            raise ValueError(f"{path} line {number} is not a metrics record ({exc}); fix or delete that line, or "
                             "move the file away") from None
        records.append(record)
    return records


class MetricsLog:
    """Append-only metrics sink for rank 0; ``enabled=False`` makes every call a no-op (other ranks)."""

    def __init__(self, run_dir: str | Path | None, tensorboard: bool = False, enabled: bool = True):
        self.path = Path(run_dir) / METRICS if run_dir is not None and enabled else None
        self._fh = None
        self._tb = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                self._tb = _tensorboard_writer(self.path.parent / "tensorboard")

    def truncate_after(self, step: int) -> None:
        """Keep only records with ``step <= step`` (called when resuming from the checkpoint of ``step``)."""
        if self.path is None or not self.path.is_file():
            return
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode())

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one JSON line, and its numeric values as TensorBoard scalars at ``record["step"]``;
        a no-op when disabled."""
        if self.path is None:
            return
        try:
            if self._fh is None:
                self._fh = open(self.path, "a", buffering=1)  # line-buffered: each record hits the OS at once
            self._fh.write(json.dumps(record) + "\n")
        except OSError as exc:  # e.g. ENOSPC: say so, and which file
            raise write_error(exc, self.path) from exc
        if self._tb is not None and "step" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        """Close the metrics file and the TensorBoard writer; safe to call twice."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _tensorboard_writer(directory: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("plm-interp train: TensorBoard logging skipped: the 'tensorboard' package is not installed "
              "(pip install tensorboard); metrics are still written to metrics.jsonl", file=sys.stderr)
        return None
    return SummaryWriter(str(directory))
