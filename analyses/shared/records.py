"""The result of an analysis whose numbers are a list of records (one dict per table row) plus its settings.

Why a base: five iGSM results repeated the same two fields and ``rows()``; here they are written once, with a
lookup by field values that each result's accessors (``accuracy(set, op)``, ``retries(set)``...) are made of.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyses.result import AnalysisResult


@dataclass
class RecordsResult(AnalysisResult):
    """``records`` (the table's rows, in order) and the ``settings`` the analysis ran with."""

    records: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return self.records

    def record(self, **match: Any) -> dict[str, Any]:
        """The first record whose fields equal ``match``; a KeyError names the fields when there is none."""
        for r in self.records:
            if all(r.get(k) == v for k, v in match.items()):
                return r
        raise KeyError(f"{type(self).__name__} has no record with {match}")
