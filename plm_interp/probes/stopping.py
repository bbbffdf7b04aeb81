"""One stopping rule for every probe fit: stop when the figure the probe reports has converged.

The figure a probe reports is a held-out accuracy, so the fit watches that figure on a *validation* split carved
from the training data (never the test set): every check it records the validation accuracy, keeps the weights of
the best check, and stops once ``patience`` checks in a row have not improved on the best by at least ``min_delta``
(0.1 point by default). The reported figure is then the test accuracy at the best-validation weights. The loss-based
rule (:data:`plm_interp.probes.lbfgs.STOP`) stays available as ``stop="loss"``: the figure test in the slow tier
checks whether both land within half a point of each other.

Why a figure rule and not a loss rule: past the point where held-out accuracy stops moving, a fit keeps sharpening
its training loss for thousands of L-BFGS iterations; and where the probe can separate its training set, the loss
optimum over-fits, so the best-validation point is the better estimate of the probe's held-out figure.

Why the window grows (``relative_patience``): the NT probes' validation curve climbs on a log scale of iterations
(demo-rot's full probe, NT2: 98.4 after 200 L-BFGS iterations, 98.7 after 300, 99.1 after 1,600), so a fixed
window of 30 iterations stopped on the first plateau, up to 3.1 points below the loss-converged figure on one
record (docs/analyses.md). The NT default waits as long again as the fit took to make its last gain.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

STOP_RULES = ("figure", "loss")


@dataclass(frozen=True)
class FigureStop:
    """Stop after ``patience`` checks without a validation-accuracy gain of at least ``min_delta`` (a fraction:
    0.001 is 0.1 point); ``max_checks`` caps the work (a fit it ends is reported as not converged).

    ``relative_patience`` r > 0 lengthens the window with the fit's progress: after a gain at check c the fit waits
    ``max(patience, ceil(r * c))`` checks. Why: a full-batch fit's validation curve moves on a log scale of
    iterations (plateaus of tens of iterations early, hundreds late), so a fixed window that suits the start stops
    on the first long plateau (on demo-rot's NT probes, up to 3 points below the loss-converged figure). With r = 1
    the fit stops once it has run twice as long as it took to make its last gain."""
    min_delta: float = 0.001
    patience: int = 5
    max_checks: int = 200
    relative_patience: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_delta < 1:
            raise ValueError(f"min_delta = {self.min_delta!r} must be in [0, 1) (a fraction of accuracy)")
        for name in ("patience", "max_checks"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} = {v!r} must be a positive integer")
        r = self.relative_patience
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 100:
            raise ValueError(f"relative_patience = {r!r} must be a number in [0, 100] (0: a fixed window)")

    def window(self, gain_check: int) -> int:
        """Checks to wait after a gain at check number ``gain_check`` (0 = the starting point)."""
        return max(self.patience, math.ceil(self.relative_patience * gain_check))


def coerce_spec(cls, value, field_name: str):
    """``value`` as the frozen spec ``cls``: None gives the defaults, a dict (from JSON, TOML or ``--set``) gives
    ``cls(**value)`` with nested dicts for nested specs (``rule``), an instance is kept. Unknown keys and bad values
    are refused naming ``field_name``."""
    import dataclasses

    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"field {field_name!r} = {value!r}: must be a {cls.__name__} or a dict of its fields")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ValueError(f"field {field_name!r} has unknown key(s) {unknown}; its keys: {sorted(names)}")
    kwargs = dict(value)
    if isinstance(kwargs.get("rule"), dict):
        kwargs["rule"] = coerce_spec(FigureStop, kwargs["rule"], f"{field_name}.rule")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"field {field_name!r} = {value!r}: {exc}") from None


@dataclass
class FigureMonitor:
    """Tracks the validation curve of one fit and the parameters at its best point.

    ``check(step)`` evaluates ``evaluate()`` (validation accuracy), records it, snapshots ``params`` when it is the
    best so far, and returns True when the rule says stop. ``restore()`` writes the best snapshot back."""
    evaluate: Callable[[], float]
    params: list[torch.Tensor]
    rule: FigureStop = field(default_factory=FigureStop)
    curve: list[tuple[int, float]] = field(default_factory=list)
    best: float = float("-inf")
    best_step: int = 0
    since: int = 0
    gain_check: int = 0
    reason: str = ""
    _snapshot: list[torch.Tensor] | None = None
    _ref: float = float("-inf")

    @classmethod
    def of(cls, evaluate: Callable[[], float], params: Iterable[torch.Tensor], rule: FigureStop | None = None):
        """A monitor of ``evaluate()`` (validation accuracy) that snapshots ``params`` at its best check."""
        return cls(evaluate, list(params), rule or FigureStop())

    def check(self, step: int) -> bool:
        """Record the validation figure at ``step``, keep the weights if it is the best so far; True: stop now."""
        value = float(self.evaluate())
        self.curve.append((int(step), value))
        if value > self.best:  # any gain keeps the better weights
            self.best, self.best_step = value, int(step)
            self._snapshot = [p.detach().clone() for p in self.params]
        if value >= self._ref + self.rule.min_delta:  # only a gain of min_delta resets the patience
            self._ref, self.since, self.gain_check = value, 0, len(self.curve) - 1
        else:
            self.since += 1
        window = self.rule.window(self.gain_check)
        if self.since >= window:
            self.reason = (f"validation accuracy gained less than {100 * self.rule.min_delta:g} point over "
                           f"{window} checks")
            return True
        if len(self.curve) >= self.rule.max_checks:
            self.reason = f"max_checks = {self.rule.max_checks} reached"
            return True
        return False

    @property
    def converged(self) -> bool:
        """Whether the rule (not ``max_checks``) ended the fit."""
        return self.reason.startswith("validation")

    @torch.no_grad()
    def restore(self) -> None:
        """Write the best check's weights back into the parameters."""
        if self._snapshot is not None:
            for p, s in zip(self.params, self._snapshot):
                p.copy_(s)

    def as_dict(self) -> dict:
        """The fit's record: best validation accuracy, its step, checks, why it stopped, the curve."""
        return {"stop": "figure", "best_val_acc": round(self.best, 6), "best_step": self.best_step,
                "checks": len(self.curve), "reason": self.reason,
                "val_curve": [(step, round(v, 6)) for step, v in self.curve]}
