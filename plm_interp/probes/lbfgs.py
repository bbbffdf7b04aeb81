"""Fit a probe to convergence: full-batch L-BFGS on cached activations, with a stated stopping rule.

Why not mini-batch AdamW for a fixed number of steps (the paper's recipe, 30k steps): a fixed step count
measures a different point of the same probe on every budget, and a laptop budget stops far from the optimum.
A probe is a small, smooth problem on features computed once, so a second-order full-batch method reaches
the optimum of the (lightly ridge-regularised) training loss in tens of iterations, and the figure reported is
the probe's, not the budget's. The stopping rule is the same on every device (:data:`STOP`), and every fit
reports whether it met it (:class:`FitReport`); ``max_iter`` is an explicit budget, reported as such.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import torch

#: the stopping rule, identical on every device: stop when ``window`` L-BFGS iterations lower the training loss
#: (mean cross-entropy + ridge, nats) by less than ``rel_tol`` of its value, or the gradient's max-norm falls below
#: ``grad_tol``. ``max_iter`` caps the work; a fit that hits it is reported as not converged.
STOP = dict(rel_tol=1e-4, window=10, grad_tol=1e-5, max_iter=500)
#: L-BFGS memory (curvature pairs kept); 50 and 100 gave the same validation curve on demo-rot's full probe
HISTORY = 20


@dataclass
class FitReport:
    """How a fit ended: ``converged`` is True iff the stopping rule (not the budget) ended it."""
    converged: bool
    iterations: int
    evaluations: int
    loss: float
    grad_max: float
    rel_tol: float
    #: under the figure rule (:mod:`plm_interp.probes.stopping`): best validation accuracy, its step, the curve
    figure: dict | None = None

    def as_dict(self) -> dict:
        """The report as a plain dict (for a result's JSON)."""
        return asdict(self)


def fit_lbfgs(loss_fn: Callable[[], torch.Tensor], params: Iterable[torch.nn.Parameter], rel_tol: float | None = None,
              grad_tol: float | None = None, max_iter: int | None = None, window: int | None = None,
              on_eval: Callable[[], None] | None = None, monitor=None) -> FitReport:
    """Minimise ``loss_fn()`` over ``params`` with L-BFGS (strong-Wolfe line search) until :data:`STOP` holds.

    With ``monitor`` (a :class:`plm_interp.probes.stopping.FigureMonitor`) the figure rule decides instead: after
    every ``window`` iterations the monitor checks the validation figure, the fit stops when it says so, and the
    best-validation parameters are restored (``max_iter`` still caps the work; the loss rule is not applied)."""
    rel_tol = STOP["rel_tol"] if rel_tol is None else rel_tol
    grad_tol = STOP["grad_tol"] if grad_tol is None else grad_tol
    max_iter = STOP["max_iter"] if max_iter is None else max_iter
    window = STOP["window"] if window is None else window
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        raise ValueError(f"max_iter = {max_iter!r} must be a positive integer (the L-BFGS iteration budget)")
    if not rel_tol >= 0 or not grad_tol >= 0 or window < 1:
        raise ValueError(f"rel_tol = {rel_tol!r}, grad_tol = {grad_tol!r} must be >= 0 and window = {window!r} >= 1")
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=window, history_size=HISTORY, line_search_fn="strong_wolfe",
                            tolerance_grad=grad_tol, tolerance_change=1e-12)
    evals = [0]

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        evals[0] += 1
        if on_eval is not None:
            on_eval()
        return loss

    state = opt.state[params[0]]
    prev, converged = None, False
    if monitor is not None:  # the starting point is a candidate too (a warm start may already be the best)
        monitor.check(0)
    while state.get("n_iter", 0) < max_iter:
        done = state.get("n_iter", 0)
        opt.param_groups[0]["max_iter"] = min(window, max_iter - done)
        opt.step(closure)
        loss = float(state["prev_loss"]) if "prev_loss" in state else float("inf")
        gmax = _grad_max(params)
        if monitor is not None:
            stalled = state.get("n_iter", 0) == done  # no step possible: the training optimum itself
            if monitor.check(state.get("n_iter", 0)) or stalled:
                if stalled and not monitor.reason:
                    monitor.reason = "training loss at its optimum (no L-BFGS step possible)"
                converged = monitor.converged or stalled
                break
            continue
        if gmax <= grad_tol or state.get("n_iter", 0) == done:  # gradient test met, or no step was possible
            converged = True
            break
        if prev is not None and prev - loss <= rel_tol * abs(loss):
            converged = True
            break
        prev = loss
    iterations = state.get("n_iter", 0)
    if monitor is not None:
        monitor.restore()
    final = float(closure().detach())
    gmax = _grad_max(params)
    opt.zero_grad(set_to_none=True)
    converged = converged or (monitor is None and gmax <= grad_tol)
    return FitReport(converged=bool(converged), iterations=int(iterations), evaluations=evals[0], loss=final,
                     grad_max=gmax, rel_tol=rel_tol)


def _grad_max(params) -> float:
    return max((float(p.grad.abs().max()) for p in params if p.grad is not None), default=0.0)
