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

Whitening: residual-stream features are badly conditioned (a few directions carry most of the variance), and a
first- or second-order method then needs ~1000 iterations for a linear probe. Each fit runs on whitened
features z = (x − μ) M (μ, M from the valid positions' mean and covariance; directions without variance
dropped) and writes the equivalent map of the raw features back into the probe: the family is unchanged (a linear
map of z is a linear map of x), and the ridge is defined on the weights of z, so it does not depend on the
units of any direction of the residual stream.

Warm start of the mixing probes: from the seeded random P the mixing is close to uniform over the whole string,
an almost flat region of the loss where a full-batch method stalls. Both mixing modes therefore start from the
fitted diagonal probe (the same map in every head) and from the seeded P scaled so that each position's self-logit
is ln(n_ctx): it first reads about half from itself and half spread over the rest. (A larger self-logit, e.g.
ln(n_ctx) + 2, starts nearer the diagonal optimum but in a saturated softmax; on demo-rot NT2 it reached a training
loss of 0.117 after 200 iterations against 0.051 from ln(n_ctx), at the same held-out accuracy.) This is a
starting point, not a constraint: the family and the objective are unchanged.

Cost of the full mode: every row's valid positions are a prefix (BOS, the string, EOS), so rows are grouped by
length and each group's mixing is one matrix product (:func:`_prefix_groups`); on demo-rot this is 1.6x faster
per evaluation than the padded form, with the same loss. Where lengths are nearly unique (cfg3b's ~300-token
strings) the padded form is 6x faster instead; :func:`_full_loss` picks by rows per length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int

from plm_interp.probes.lbfgs import STOP, FitReport, fit_lbfgs
from plm_interp.probes.stopping import STOP_RULES, FigureMonitor, FigureStop
from plm_interp.probes.multihead import MultiHeadLinearProbe

#: ridge strength on the mean loss (the same on every device and for every mode)
RIDGE = 1e-3


@dataclass(frozen=True)
class MultiHeadFit:
    """The multi-head probe's family and how it is fitted (one frozen spec, passed whole): ``n_heads`` heads with
    position embeddings of ``width`` (the paper's 16 x 1024), the ``ridge``, the stopping rule ``stop`` (``"figure"``:
    the validation figure on the last ``val_fraction`` of the training rows, :mod:`plm_interp.probes.stopping`;
    ``"loss"``: :data:`plm_interp.probes.lbfgs.STOP`), and ``max_iter`` L-BFGS iterations at most per fit (None: 2,000
    under the figure rule, STOP's 500 under the loss rule); ``rel_tol`` overrides STOP's for the loss rule."""
    n_heads: int = 16
    width: int = 1024
    ridge: float = RIDGE
    stop: str = "figure"
    max_iter: int | None = None
    rel_tol: float | None = None
    val_fraction: float = 0.2
    #: a check every 10 L-BFGS iterations; stop once the fit has run max(30 iterations, as long again as it took to
    #: make its last 0.1-point gain) without another (relative_patience = 1: the validation curve of the full probe
    #: climbs on a log scale of iterations, docs/analyses.md)
    rule: FigureStop = FigureStop(min_delta=0.001, patience=3, relative_patience=1.0)

    def __post_init__(self) -> None:
        for name in ("n_heads", "width", "max_iter"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"field {name!r} = {v!r}: must be a positive int")
        if not (isinstance(self.ridge, (int, float)) and self.ridge >= 0):
            raise ValueError(f"field 'ridge' = {self.ridge!r}: must be a number >= 0")
        if self.stop not in STOP_RULES:
            raise ValueError(f"field 'stop' = {self.stop!r}: must be one of {list(STOP_RULES)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"field 'val_fraction' = {self.val_fraction!r}: must be in (0, 1)")

    @property
    def iteration_cap(self) -> int:
        """L-BFGS iterations at most per fit: ``max_iter``, else 2,000 under the figure rule, STOP's 500 under the
        loss rule."""
        return self.max_iter if self.max_iter is not None else (2000 if self.stop == "figure" else STOP["max_iter"])

    def fit_kwargs(self) -> dict:
        """The keyword arguments of :func:`fit_probe` this spec stands for."""
        return dict(ridge=self.ridge, rel_tol=self.rel_tol, max_iter=self.iteration_cap, stop=self.stop,
                    val_fraction=self.val_fraction, rule=self.rule)

    def as_dict(self) -> dict:
        """The spec as plain JSON, for a result's ``settings``."""
        return {"n_heads": self.n_heads, "width": self.width, "ridge": self.ridge, "stop": self.stop,
                "max_iter": self.iteration_cap, "val_fraction": self.val_fraction,
                "min_delta": self.rule.min_delta, "patience": self.rule.patience,
                "relative_patience": self.rule.relative_patience, "optimiser": "L-BFGS",
                **({"loss_rule": {**STOP, **({"rel_tol": self.rel_tol} if self.rel_tol is not None else {})}}
                   if self.stop == "loss" else {})}


class Whitener:
    """``z = (x − mean) @ M`` with identity covariance over the valid positions (module doc)."""

    def __init__(self, acts: Float[torch.Tensor, "n pos d_model"], valid: Bool[torch.Tensor, "n pos"]):
        x = acts[valid].double()
        self.mean = x.mean(0)
        evals, evecs = torch.linalg.eigh(torch.cov(x.T, correction=0))
        keep = evals > evals.max() * 1e-7
        self.M = (evecs[:, keep] / evals[keep].sqrt()).float()
        self.mean = self.mean.float()

    def __call__(self, acts: torch.Tensor) -> torch.Tensor:
        return (acts - self.mean) @ self.M

    @torch.no_grad()
    def to_raw(self, linear: torch.nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Write ``z ↦ weight z + bias`` into ``linear`` as the equal map of the raw features."""
        raw = weight @ self.M.T
        linear.weight.copy_(raw)
        linear.bias.copy_(bias - raw @ self.mean)


def fit_probe(probe: MultiHeadLinearProbe, acts: Float[torch.Tensor, "n pos d_model"],
              valid: Bool[torch.Tensor, "n pos"], labels: Int[torch.Tensor, "n pos"], ridge: float = RIDGE,
              rel_tol: float | None = None, grad_tol: float | None = None, max_iter: int | None = None,
              warm_start: bool = True, whitener: Whitener | None = None,
              white: torch.Tensor | None = None, on_eval=None, stop: str = "loss", val_fraction: float = 0.2,
              rule: FigureStop | None = None) -> FitReport:
    """Fit ``probe`` in place to predict ``labels`` (-1: not scored) from ``acts``; returns how the fit ended.

    ``stop="loss"``: minimise the training objective until :data:`STOP` holds (the loss-converged fit).
    ``stop="figure"`` (:mod:`plm_interp.probes.stopping`): the last ``val_fraction`` of the rows are held out as a
    validation split (rows are independent samples), the probe is fitted on the rest, and the fit stops when the
    validation accuracy has converged (``rule``), keeping the best-validation weights; the report then carries the
    validation curve (``report.figure``).

    ``warm_start=False`` starts the mixing probes from their seeded weights as they are (module doc). A caller
    fitting several probes on the same features passes ``whitener`` (and ``white = whitener(acts)``) once."""
    if acts.shape[:2] != labels.shape or valid.shape != labels.shape:
        raise ValueError(f"acts {tuple(acts.shape)}, valid {tuple(valid.shape)} and labels {tuple(labels.shape)} "
                         "must agree on [n, pos]")
    if not bool((labels >= 0).any()):
        raise ValueError("the probe training set is empty (no position has a label >= 0)")
    if not ridge >= 0:
        raise ValueError(f"ridge = {ridge!r} must be >= 0")
    if stop not in STOP_RULES:
        raise ValueError(f"stop = {stop!r} must be one of {list(STOP_RULES)}")
    whitener = whitener or Whitener(acts, valid)
    z = whitener(acts) if white is None else white
    val = None
    if stop == "figure":
        n_val = int(round(val_fraction * acts.shape[0]))
        if not 0 < val_fraction < 1 or n_val < 1 or n_val >= acts.shape[0]:
            raise ValueError(f"val_fraction = {val_fraction!r} must leave at least one row for validation and one "
                             f"for training ({acts.shape[0]} rows)")
        if not bool((labels[-n_val:] >= 0).any()) or not bool((labels[:-n_val] >= 0).any()):
            raise ValueError("the validation or training split has no labelled position: give more rows")
        val = (z[-n_val:], valid[-n_val:], labels[-n_val:])
        z, valid, labels = z[:-n_val], valid[:-n_val], labels[:-n_val]
    stop_kw = dict(rel_tol=rel_tol, grad_tol=grad_tol, max_iter=max_iter, on_eval=on_eval)
    H, C = probe.n_heads, probe.n_classes
    # the probe's map, re-expressed on the whitened features (fitted there, written back at the end)
    f = torch.nn.Linear(z.shape[-1], H * C)
    with torch.no_grad():
        f.weight.copy_(probe.f.weight @ torch.linalg.pinv(whitener.M).T)
        f.bias.copy_(probe.f.bias + probe.f.weight @ whitener.mean)
    if probe.mode == "diagonal":
        report = _fit_diagonal(f, H, C, z, labels, ridge, stop_kw, val, rule)
    else:
        if warm_start:
            _warm_start(f, probe.P, H, C, z, labels, ridge, stop_kw)
        fit = _fit_tridiagonal if probe.mode == "tridiagonal" else _fit_full
        report = fit(f, probe.P, H, C, z, valid, labels, ridge, stop_kw, val, rule)
    whitener.to_raw(probe.f, f.weight, f.bias)
    return report


def _run(loss_fn, params, stop_kw, outputs_val, val, rule) -> FitReport:
    """``fit_lbfgs`` under the loss rule, or under the figure rule when a validation split is given
    (``outputs_val()`` gives the validation logits of the labelled validation positions, ``val[2]`` their labels)."""
    params = list(params)
    if val is None:
        return fit_lbfgs(loss_fn, params, **stop_kw)
    y_val = val[2][val[2] >= 0] if val[2].dim() > 1 else val[2]

    @torch.no_grad()
    def evaluate() -> float:
        return float((outputs_val().argmax(-1) == y_val).float().mean())

    monitor = FigureMonitor.of(evaluate, params, rule)
    report = fit_lbfgs(loss_fn, params, **stop_kw, monitor=monitor)
    report.figure = monitor.as_dict()
    return report


@torch.no_grad()
def _warm_start(f, P, H, C, z, labels, ridge, stop_kw) -> None:
    """Diagonal solution in every head, P scaled to favour the self position (module doc)."""
    with torch.enable_grad():
        _fit_diagonal(f, H, C, z, labels, ridge, {**stop_kw, "on_eval": None}, None, None)
    self_logit = (P * P).sum(-1).mean()
    P.mul_((math.log(P.shape[0]) / self_logit).sqrt())


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
    def write_back(self, P: torch.Tensor) -> None:   # a slice of the position-embedding Parameter
        P.copy_((self.F @ self.basis.transpose(1, 2)).permute(1, 0, 2))


def _fit_diagonal(f, H, C, z, labels, ridge, stop_kw, val, rule) -> FitReport:
    """Σ_r f_r is one linear map: fit it as such, store it as 1/H of it in every head."""
    sel = labels >= 0
    x, y = z[sel], labels[sel]
    lin = torch.nn.Linear(x.shape[-1], C)
    with torch.no_grad():
        lin.weight.copy_(f.weight.view(H, C, -1).sum(0))
        lin.bias.copy_(f.bias.view(H, C).sum(0))
    x_val = val[0][val[2] >= 0] if val is not None else None
    report = _run(lambda: F.cross_entropy(lin(x), y) + _penalty(ridge, lin.weight), lin.parameters(), stop_kw,
                  lambda: lin(x_val), val, rule)
    with torch.no_grad():
        f.weight.copy_((lin.weight / H).repeat(H, 1))
        f.bias.copy_((lin.bias / H).repeat(H))
    return report


def _tri_inputs(acts, valid, labels):
    """The three neighbours' features of every labelled position, which of them are valid, and the labels."""
    b, i = torch.nonzero(labels >= 0, as_tuple=True)
    pos = acts.shape[1]
    k = i[:, None] + torch.tensor([-1, 0, 1])  # [m, 3]
    ok = (k >= 0) & (k < pos)
    kc = k.clamp(0, pos - 1)
    ok &= valid[b[:, None], kc]
    return acts[b[:, None], kc], ok, i, labels[b, i]  # x [m, 3, d]


def _tri_out(f, factor, H, C, x, ok, i):
    per_head = f(x).view(len(i), 3, H, C)
    Fm = factor.F  # [H, pos, k]
    gram = torch.stack([(Fm * Fm.roll(-o, 1)).sum(-1) for o in (-1, 0, 1)], -1)  # [H, pos, 3]
    logits = gram[:, i].permute(1, 2, 0).masked_fill(~ok[..., None], float("-inf"))  # [m, 3, H]
    return (torch.softmax(logits, dim=1)[..., None] * per_head).sum((1, 2))


def _fit_tridiagonal(f, P, H, C, acts, valid, labels, ridge, stop_kw, val, rule) -> FitReport:
    pos = max(acts.shape[1], val[0].shape[1] if val is not None else 0)
    x, ok, i, y = _tri_inputs(acts, valid, labels)
    factor = _Factor(P[:pos])
    xv = _tri_inputs(*val) if val is not None else None

    def loss():
        out = _tri_out(f, factor, H, C, x, ok, i)
        return F.cross_entropy(out, y) + _penalty(ridge, f.weight) + factor.penalty(ridge)

    report = _run(loss, [*f.parameters(), factor.F], stop_kw, lambda: _tri_out(f, factor, H, C, *xv[:3]), val, rule)
    with torch.no_grad():
        factor.write_back(P[:pos])
    return report


#: the length-grouped form is used when its groups hold at least this many rows on average (:func:`_full_loss`)
GROUPED_MIN_ROWS = 8


def _full_out(f, factor, H, C, acts, valid, labels):
    """The full-mode outputs at the labelled positions in their faster, numerically equal form:
    ``("grouped" | "padded", outputs_fn, labels)``.

    Why a rule: the grouped form builds one ``[heads, L, L]`` weight per distinct length, so it wins when many rows
    share each length and loses when lengths are nearly unique (grouped vs padded per evaluation, 2 threads:
    demo-rot 1,024 strings in 47 lengths 52 vs 84 ms; cfg3b-rot 243 strings in 116 lengths 1,301 vs 203 ms). The
    rule depends on the data only, not on timing, so a rerun takes the same path and gives the same figures."""
    groups = _prefix_groups(acts, valid, labels)
    if groups is not None and sum(g[1].shape[1] for g in groups) >= GROUPED_MIN_ROWS * len(groups):
        return "grouped", _grouped_out(f, factor, H, C, groups), torch.cat([g[4] for g in groups])
    return "padded", _padded_out(f, factor, H, C, acts, valid, labels), labels[labels >= 0]


def _full_loss(f, factor, H, C, acts, valid, labels):
    """``(form, loss_fn)``: the mean cross-entropy of :func:`_full_out`'s outputs (no penalty)."""
    form, out, y = _full_out(f, factor, H, C, acts, valid, labels)
    return form, lambda: F.cross_entropy(out(), y)


def _fit_full(f, P, H, C, acts, valid, labels, ridge, stop_kw, val, rule) -> FitReport:
    pos = max(acts.shape[1], val[0].shape[1] if val is not None else 0)
    factor = _Factor(P[:pos])
    _, full_loss = _full_loss(f, factor, H, C, acts, valid, labels)
    outputs_val = None
    if val is not None:
        _, out_val, y_val = _full_out(f, factor, H, C, *val)
        val = (val[0], val[1], y_val)  # the labels in the order the chosen form returns them
        outputs_val = out_val

    def loss():
        return full_loss() + _penalty(ridge, f.weight) + factor.penalty(ridge)

    report = _run(loss, [*f.parameters(), factor.F], stop_kw, outputs_val, val, rule)
    with torch.no_grad():
        factor.write_back(P[:pos])
    return report


def _prefix_groups(acts, valid, labels):
    """Rows grouped by their number of valid positions, when every row's valid positions are a prefix (BOS,
    the string, EOS: always so in ``nt_probe``); else None.

    Why: within a group of length L the softmax over the valid keys is the same for every row, so the mixing is
    one ``[L, L·heads] @ [L·heads, rows·classes]`` product with no padding, no per-row renormalisation and no
    per-head output tensor: 2.3x less time per evaluation than the padded form on demo-rot (same numbers)."""
    n, pos, _ = acts.shape
    lengths = valid.sum(1)
    if not torch.equal(valid, torch.arange(pos, device=valid.device)[None] < lengths[:, None]):
        return None
    groups = []
    for length in lengths.unique().tolist():
        rows = torch.nonzero(lengths == length)[:, 0]
        lab = labels[rows, :length].T  # [i, row]
        i, b = torch.nonzero(lab >= 0, as_tuple=True)
        if len(i):
            groups.append((length, acts[rows, :length].transpose(0, 1).contiguous(), i, b, lab[i, b]))
    return groups


def _grouped_out(f, factor, H, C, groups):
    def out():
        gram = factor.gram()  # [H, pos, pos]
        log_norm = torch.logcumsumexp(gram, dim=-1)  # log Σ_{k <= j} exp ⟨P_i, P_k⟩: the softmax over a prefix
        outs = []
        for length, z, i, b, _ in groups:
            w = torch.exp(gram[:, :length, :length] - log_norm[:, :length, length - 1 : length])  # [H, i, k]
            w = w.permute(1, 2, 0).reshape(length, length * H)  # [i, (k, head)]
            u = f(z).view(length, z.shape[1], H, C).permute(0, 2, 1, 3).reshape(length * H, -1)  # [(k, head), (row, c)]
            outs.append((w @ u).view(length, z.shape[1], C)[i, b])
        return torch.cat(outs)

    return out


def _padded_out(f, factor, H, C, acts, valid, labels):
    sel = labels >= 0
    n, pos, _ = acts.shape
    v = valid.to(acts.dtype)

    def out():
        gram = factor.gram()[:, :pos, :pos]
        per_head = f(acts).view(n, pos, H, C) * v[:, :, None, None]
        w = torch.softmax(gram, dim=-1)  # [H, pos, pos]; padding removed by renormalising below
        num = torch.einsum("rik,bkrc->birc", w, per_head)
        den = torch.einsum("rik,bk->bir", w, v).clamp_min(1e-30)
        return (num / den[..., None]).sum(2)[sel]

    return out


@torch.no_grad()
def predict(probe: MultiHeadLinearProbe, acts: Float[torch.Tensor, "n pos d_model"],
            valid: Bool[torch.Tensor, "n pos"], batch_size: int = 256) -> Int[torch.Tensor, "n pos"]:
    """Predicted classes ``[n, pos]`` of ``probe`` on cached activations."""
    return torch.cat([probe(acts[s: s + batch_size], valid[s: s + batch_size]).argmax(-1)
                      for s in range(0, acts.shape[0], batch_size)])
