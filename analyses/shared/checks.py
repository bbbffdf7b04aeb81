"""Argument checks every analysis shares, so each refuses bad input by name before any work starts."""
from __future__ import annotations

from typing import Any


def check_positive(**values: Any) -> None:
    """Bad sizes fail by name before any work starts. A bool is refused although Python counts it as an int:
    ``cut=True`` or ``n=True`` is a slip, and taking it as 1 gives a figure nobody asked for."""
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"field {name!r} = {v!r}: must be a positive int")


def check_nonempty(**values: Any) -> None:
    """A list option that selects nothing (``sets=[]``) is refused by name: the analysis would otherwise save an
    empty result with exit 0, which reads as "measured, nothing found"."""
    for name, v in values.items():
        if v is not None and len(v) == 0:
            raise ValueError(f"field {name!r} = {v!r}: must name at least one item")
