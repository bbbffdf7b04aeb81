"""The result of an analysis whose numbers are a list of records (one dict per table row) plus its settings.

Why a base: five iGSM results repeated the same two fields and ``rows()``; here they are written once, with a
lookup by field values that each result's accessors (``accuracy(set, op)``, ``retries(set)``...) are made of.
:class:`LayerRecordsResult` adds what every probe fitted layer by layer shares: the layers, and a lookup that
defaults to the headline's record (the trained model at the last layer).
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


@dataclass
class LayerRecordsResult(RecordsResult):
    """Records per (``model``, ``layer``): a probe fitted at each of ``layers`` on the trained model and its
    controls (``model`` is ``"trained"``, ``"random-init"``, ...)."""

    layers: list[int] = field(default_factory=list)

    def record(self, layer: int | None = None, model: str = "trained", **match: Any) -> dict[str, Any]:
        """The record of ``model`` at ``layer`` (default: the last layer, the headline's), further narrowed by
        ``match``; a KeyError names the fields when there is none."""
        return super().record(model=model, layer=self.layers[-1] if layer is None else layer, **match)

    def accuracy(self, layer: int | None = None, model: str = "trained") -> float:
        """The held-out accuracy of ``model`` at ``layer`` (default: the last layer)."""
        return self.record(layer, model)["acc"]

    def has_model(self, model: str) -> bool:
        """Whether any record is of ``model`` (a control the caller switched off has none)."""
        return any(r["model"] == model for r in self.records)
