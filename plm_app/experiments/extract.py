"""Readers of the analyses' ``result.json`` (``AnalysisResult.to_dict()``), used as metric extractors.

Each returns a function ``result_dict -> float``; a missing entry raises KeyError/StopIteration, which the
table shows as "not yet run" rather than a wrong number.
"""
from __future__ import annotations

from typing import Any, Callable

Extract = Callable[[dict[str, Any]], float]


def generation_accuracy(cut: str) -> Extract:
    """``generation``: fraction of completions in the language from prefix ``cut`` (``"cut0"``, ``"cut20"``)."""
    return lambda r: r["accuracy"][cut]


def generation_kl(r: dict[str, Any]) -> float:
    """``generation``: teacher-forced KL(truth ‖ model), nats per position."""
    return r["kl"]


def nt_probe_mean(probe: str, model: str = "trained", key: str = "acc") -> Extract:
    """``nt_probe``: mean over the probed NT levels of ``probe`` at the last probed layer (``key="majority"``:
    the majority guess on the same positions)."""
    def read(r):
        layer = r["layers"][-1]
        vals = [x[key] for x in r["records"] if (x["model"], x["layer"], x["probe"]) == (model, layer, probe)
                and x[key] is not None]
        if not vals:
            raise KeyError((model, layer, probe))
        return sum(vals) / len(vals)
    return read


def robustness_accuracy(rate: float, temperature: float, key: str = "accuracy") -> Extract:
    """``robustness``: accuracy of completions of prefixes with a fraction ``rate`` of tokens flipped
    (``key="n"``: the completions behind it)."""
    return lambda r: next(x[key] for x in r["records"]
                          if abs(x["rate"] - rate) < 1e-9 and abs(x["temperature"] - temperature) < 1e-9)


def v_probe_accuracy(model: str = "trained", layer: str = "last", key: str = "acc") -> Extract:
    """``v_probe``: accuracy at the ``"last"`` or ``"middle"`` probed layer (``key="majority"``: majority guess)."""
    def read(r):
        layers = r["layers"]
        at = layers[-1] if layer == "last" else layers[len(layers) // 2]
        return next(x[key] for x in r["records"] if (x["model"], x["layer"]) == (model, at))
    return read


def igsm_accuracy(set_name: str, op: int | str = "all", key: str = "acc") -> Extract:
    """``reasoning_level`` / ``retry_eval``: fully correct solutions on eval set ``set_name`` at ``op``."""
    return lambda r: next(x[key] for x in r["records"] if x["set"] == set_name and str(x["op"]) == str(op))


def igsm_ood_accuracy(key: str = "acc") -> Extract:
    """Mean accuracy over the out-of-distribution sets (``"op=k"``), each weighted by its problems
    (``key="n"``: the problems, summed)."""
    def read(r):
        rows = [x for x in r["records"] if x["set"].startswith("op=") and x["op"] == "all"]
        if not rows:
            raise KeyError("op=")
        if key == "n":
            return sum(x["n"] for x in rows)
        return sum(x[key] * x["n"] for x in rows) / sum(x["n"] for x in rows)
    return read


def generation_count(cut: str) -> Extract:
    """``generation``: completions behind the accuracy at ``cut``."""
    return lambda r: r["n_by_cut"].get(cut, r["n"])
