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

#: the stopping rule, identical on every device: L-BFGS stops when one iteration changes the training loss
#: (mean cross-entropy + ridge, nats) by less than ``loss_tol`` or moves no weight by more than that, or when the
#: gradient's max-norm is below ``grad_tol``. ``max_iter`` caps the work; a fit that hits it is not converged.
STOP = dict(loss_tol=1e-7, grad_tol=1e-6, max_iter=2000)


@dataclass
class FitReport:
    """How a fit ended: ``converged`` is True iff the stopping rule (not the budget) ended it."""
    converged: bool
    iterations: int
    evaluations: int
    loss: float
    grad_max: float
    loss_tol: float

    def as_dict(self) -> dict:
        return asdict(self)


def fit_lbfgs(loss_fn: Callable[[], torch.Tensor], params: Iterable[torch.nn.Parameter], loss_tol: float | None = None,
              grad_tol: float | None = None, max_iter: int | None = None,
              on_eval: Callable[[], None] | None = None) -> FitReport:
    """Minimise ``loss_fn()`` over ``params`` with L-BFGS (strong-Wolfe line search) until :data:`STOP` holds."""
    loss_tol = STOP["loss_tol"] if loss_tol is None else loss_tol
    grad_tol = STOP["grad_tol"] if grad_tol is None else grad_tol
    max_iter = STOP["max_iter"] if max_iter is None else max_iter
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter = {max_iter!r} must be a positive integer (the L-BFGS iteration budget)")
    if not loss_tol >= 0 or not grad_tol >= 0:
        raise ValueError(f"loss_tol = {loss_tol!r} and grad_tol = {grad_tol!r} must be >= 0")
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, max_eval=2 * max_iter + 10, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=grad_tol, tolerance_change=loss_tol)
    evals = [0]

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        evals[0] += 1
        if on_eval is not None:
            on_eval()
        return loss

    opt.step(closure)
    iterations = opt.state[opt._params[0]].get("n_iter", 0)
    final = float(closure().detach())
    gmax = max((float(p.grad.abs().max()) for p in params if p.grad is not None), default=0.0)
    opt.zero_grad(set_to_none=True)
    converged = iterations < max_iter and evals[0] - 1 < opt.defaults["max_eval"] or gmax <= grad_tol
    return FitReport(converged=bool(converged), iterations=int(iterations), evaluations=evals[0], loss=final,
                     grad_max=gmax, loss_tol=loss_tol)
