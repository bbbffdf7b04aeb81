"""Fit the multi-head probe (eq. 4.2) to convergence on cached activations, one objective on every device.

Objective: mean cross-entropy over the labelled positions plus ``ridge / 2`` times the squared weights of the
linear maps f_r (not the biases), plus ``ridge / 2`` times the mean ⟨P_i, P_i⟩ over positions and heads for the
mixing modes (P's scale sharpens the mixing; a mean, not a sum, so the pull does not grow with n_ctx × heads). The ridge term makes the optimum
unique for the linear (diagonal) probe, and finite where classes separate, so "converged" names one point.

How each mode is fitted, all by :func:`plm_interp.probes.lbfgs.fit_lbfgs` on features computed once:

* ``diagonal`` (k = i): Σ_r f_r(E_i) is one linear map of E_i, so the probe *is* multinomial logistic
  regression on the labelled rows; it is fitted as one map W and stored as W / H in each head (same outputs).
* ``tridiagonal`` (|k − i| ≤ 1): only the three neighbours' features of each labelled row are gathered, and
  the mixing logits ⟨P_i, P_k⟩ are read from the Gram matrix's three diagonals.
* ``full``: the probe's own forward pass on the padded batch (no ``[batch, head, pos, pos]`` tensor is built).

Warm start of the mixing probes: from the seeded random P the mixing is close to uniform over the whole string,
an almost flat region of the loss (the average of all positions carries little of a local label) where a
full-batch method stalls. Both mixing modes therefore start from the fitted diagonal probe (the same map in
every head) and from the seeded P scaled so that each position first reads mostly itself (self-logit
ln(n_ctx) + 2); the fit then moves weight to the neighbours or positions that help. This is a starting point,
not a constraint: the family and the objective are unchanged.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int

from plm_interp.probes.lbfgs import FitReport, fit_lbfgs
from plm_interp.probes.multihead import MultiHeadLinearProbe

#: ridge strength on the mean loss (the same on every device and for every mode)
RIDGE = 1e-4


def fit_probe(probe: MultiHeadLinearProbe, acts: Float[torch.Tensor, "n pos d_model"],
              valid: Bool[torch.Tensor, "n pos"], labels: Int[torch.Tensor, "n pos"], ridge: float = RIDGE,
              loss_tol: float | None = None, grad_tol: float | None = None, max_iter: int | None = None,
              warm_start: bool = True, on_eval=None) -> FitReport:
    """Fit ``probe`` in place to predict ``labels`` (-1: not scored) from ``acts``; returns how the fit ended.

    ``warm_start=False`` starts the mixing probes from their seeded weights as they are (module doc)."""
    if acts.shape[:2] != labels.shape or valid.shape != labels.shape:
        raise ValueError(f"acts {tuple(acts.shape)}, valid {tuple(valid.shape)} and labels {tuple(labels.shape)} "
                         "must agree on [n, pos]")
    if not bool((labels >= 0).any()):
        raise ValueError("the probe training set is empty (no position has a label >= 0)")
    if not ridge >= 0:
        raise ValueError(f"ridge = {ridge!r} must be >= 0")
    stop = dict(loss_tol=loss_tol, grad_tol=grad_tol, max_iter=max_iter, on_eval=on_eval)
    if probe.mode == "diagonal":
        return _fit_diagonal(probe, acts, labels, ridge, stop)
    if warm_start:
        _warm_start(probe, acts, labels, ridge, stop)
    if probe.mode == "tridiagonal":
        return _fit_tridiagonal(probe, acts, valid, labels, ridge, stop)
    return _fit_full(probe, acts, valid, labels, ridge, stop)


@torch.no_grad()
def _warm_start(probe, acts, labels, ridge, stop) -> None:
    """Diagonal solution in every head, P scaled to favour the self position (module doc)."""
    diag = MultiHeadLinearProbe(acts.shape[-1], probe.n_classes, 1, probe.n_heads, 1, "diagonal")
    with torch.enable_grad():
        _fit_diagonal(diag, acts, labels, ridge, {**stop, "on_eval": None})
    probe.f.load_state_dict(diag.f.state_dict())
    n_ctx = probe.P.shape[0]
    self_logit = (probe.P * probe.P).sum(-1).mean()
    probe.P.mul_(((math.log(n_ctx) + 2) / self_logit).sqrt())


def _penalty(ridge: float, *weights: torch.Tensor) -> torch.Tensor:
    return 0.5 * ridge * sum((w * w).sum() for w in weights)


class _Factor(torch.nn.Module):
    """P's Gram factor in P's own row space: ``P_r = F_r B_r`` with ``B_r`` fixed orthonormal rows.

    Why exact: the mixing depends on P only through the Gram ``P_r P_rᵀ``, and the gradient of any function of the
    Gram with respect to P_r is ``(∂L/∂G + ∂L/∂Gᵀ) P_r``, which lies in P_r's row space; so every gradient-based
    fit from the seeded P stays in that space and fitting ``F_r`` (``n_ctx × rank``) traces the same Grams as
    fitting P (``n_ctx × width``) at a fraction of the cost when width > n_ctx (1024 vs 69 on demo strings).
    """

    def __init__(self, P: torch.Tensor):
        super().__init__()
        basis, r = torch.linalg.qr(P.detach().permute(1, 2, 0))  # [H, width, k], [H, k, n]
        self.register_buffer("basis", basis)
        self.F = torch.nn.Parameter(r.transpose(1, 2).contiguous())  # [H, n, k]

    def penalty(self, ridge: float) -> torch.Tensor:
        """``ridge / 2`` times the mean squared norm of a position embedding (= the mean self-logit ⟨P_i, P_i⟩):
        keeps the optimum finite (no infinitely sharp mixing) without a pull that grows with n_ctx × heads."""
        return 0.5 * ridge * (self.F * self.F).sum(-1).mean()

    def gram(self) -> torch.Tensor:
        return self.F @ self.F.transpose(1, 2)  # [H, n, n]

    @torch.no_grad()
    def write_back(self, P: torch.nn.Parameter) -> None:
        P.copy_((self.F @ self.basis.transpose(1, 2)).permute(1, 0, 2))


def _fit_diagonal(probe, acts, labels, ridge, stop) -> FitReport:
    sel = labels >= 0
    x, y = acts[sel], labels[sel]
    H = probe.n_heads
    lin = torch.nn.Linear(x.shape[-1], probe.n_classes)
    with torch.no_grad():  # start from the probe's own (seeded) initial map
        lin.weight.copy_(probe.f.weight.view(H, probe.n_classes, -1).sum(0))
        lin.bias.copy_(probe.f.bias.view(H, probe.n_classes).sum(0))
    report = fit_lbfgs(lambda: F.cross_entropy(lin(x), y) + _penalty(ridge, lin.weight), lin.parameters(), **stop)
    with torch.no_grad():
        probe.f.weight.copy_((lin.weight / H).repeat(H, 1))
        probe.f.bias.copy_((lin.bias / H).repeat(H))
    return report


def _fit_tridiagonal(probe, acts, valid, labels, ridge, stop) -> FitReport:
    b, i = torch.nonzero(labels >= 0, as_tuple=True)
    n, pos, _ = acts.shape
    k = i[:, None] + torch.tensor([-1, 0, 1])  # [m, 3]
    ok = (k >= 0) & (k < pos)
    kc = k.clamp(0, pos - 1)
    ok &= valid[b[:, None], kc]
    x = acts[b[:, None], kc]  # [m, 3, d]
    y = labels[b, i]
    H, C = probe.n_heads, probe.n_classes
    factor = _Factor(probe.P[:pos])

    def loss():
        per_head = probe.f(x).view(len(y), 3, H, C)
        Fm = factor.F  # [H, pos, k]
        gram = torch.stack([(Fm * Fm.roll(-o, 1)).sum(-1) for o in (-1, 0, 1)], -1)  # [H, pos, 3]
        logits = gram[:, i].permute(1, 2, 0).masked_fill(~ok[..., None], float("-inf"))  # [m, 3, H]
        out = (torch.softmax(logits, dim=1)[..., None] * per_head).sum((1, 2))
        return F.cross_entropy(out, y) + _penalty(ridge, probe.f.weight) + factor.penalty(ridge)

    report = fit_lbfgs(loss, [*probe.f.parameters(), factor.F], **stop)
    with torch.no_grad():
        factor.write_back(probe.P[:pos])
    return report


def _fit_full(probe, acts, valid, labels, ridge, stop) -> FitReport:
    sel = labels >= 0
    y = labels[sel]
    n, pos, _ = acts.shape
    H, C = probe.n_heads, probe.n_classes
    factor = _Factor(probe.P[:pos])
    v = valid.to(acts.dtype)

    def loss():
        per_head = probe.f(acts).view(n, pos, H, C) * v[:, :, None, None]
        w = torch.softmax(factor.gram(), dim=-1)  # [H, pos, pos]; padding removed by renormalising below
        num = torch.einsum("rik,bkrc->birc", w, per_head)
        den = torch.einsum("rik,bk->bir", w, v).clamp_min(1e-30)
        out = (num / den[..., None]).sum(2)[sel]
        return F.cross_entropy(out, y) + _penalty(ridge, probe.f.weight) + factor.penalty(ridge)

    report = fit_lbfgs(loss, [*probe.f.parameters(), factor.F], **stop)
    with torch.no_grad():
        factor.write_back(probe.P[:pos])
    return report
@torch.no_grad()
def predict(probe: MultiHeadLinearProbe, acts: Float[torch.Tensor, "n pos d_model"],
            valid: Bool[torch.Tensor, "n pos"], batch_size: int = 256) -> Int[torch.Tensor, "n pos"]:
    """Predicted classes ``[n, pos]`` of ``probe`` on cached activations."""
    return torch.cat([probe(acts[s: s + batch_size], valid[s: s + batch_size]).argmax(-1)
                      for s in range(0, acts.shape[0], batch_size)])
