"""The V-probe of Part 2.1 §4.1: a rank-r update of the input embedding plus a linear head, on a frozen model.

The paper's recipe: cut the sequence at the probe position, append ``[START] A [END]`` (or ``[START] A [MID] B
[END]``), freeze the model, and train "a small trainable rank-8 (linear) update on the input embedding layer" plus a
linear head on the last layer's state at ``[END]``. The update lets the probe "ask about A" in tokens the model never
saw in training, while being too small (r = 8) to compute the answer itself.

Here the update ``U[token] @ V`` is added by a forward hook on ``hook_embed`` (the TransformerLens way). By default
it touches every token's embedding (the paper's "update on the input embedding layer"); ``update="appended"``
restricts it to the appended tokens. The head reads the residual stream at ``[END]`` after a parameter-free layer
norm, so one learning rate serves every layer. The model's weights never change.

How it is fitted (:func:`fit_v_probe`), with the one stopping rule of :mod:`plm_interp.probes.stopping`:

1. the head alone on the frozen ``[END]`` states (the update starts at zero, so these are the model's own states)
   by L-BFGS, stopped by the validation figure;
2. head and update jointly by Adam on minibatches drawn without replacement from the training pool (a fresh
   example each draw until the pool is used up, standing in for the paper's fresh problems), the validation
   accuracy checked every ``check_every`` steps; the fit stops when it has converged and keeps the
   best-validation weights.

The validation split is carved from the training examples (never the test set). Because the update sits on the
input embedding, every joint step runs the whole model forward and backward: the cost of a V-probe is model passes,
so batches are drawn from length buckets (little padding) and the model runs on every free core.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn

from plm_interp.probes.activations import check_layer, fused
from plm_interp.probes.seeding import seeded
from plm_interp.probes.stopping import STOP_RULES, FigureMonitor, FigureStop

UPDATES = ("all", "appended")


@dataclass
class VExamples:
    """Probe inputs: ``prefix`` (cut at the probe position) + ``suffix`` (``[START] A ... [END]``) -> ``labels``."""

    prefixes: list[list[int]]
    suffixes: list[list[int]]
    labels: Int[torch.Tensor, " n"]

    def __len__(self) -> int:
        return len(self.prefixes)

    def subset(self, rows) -> "VExamples":
        """The examples at ``rows``, in that order."""
        rows = list(rows)
        return VExamples([self.prefixes[i] for i in rows], [self.suffixes[i] for i in rows], self.labels[rows])

    def length(self, i: int) -> int:
        """Tokens of example ``i`` (prefix and suffix): what a forward pass over it costs."""
        return len(self.prefixes[i]) + len(self.suffixes[i])

    def batch(self, rows, pad: int = 0, device=None):
        """``tokens [b, pos]`` right-padded, ``end [b]`` (the [END] index), ``appended [b, pos]`` (suffix mask)."""
        seqs = [self.prefixes[i] + self.suffixes[i] for i in rows]
        width = max(len(s) for s in seqs)
        tokens = torch.full((len(seqs), width), pad, dtype=torch.long)
        appended = torch.zeros((len(seqs), width), dtype=torch.bool)
        for b, (i, s) in enumerate(zip(rows, seqs)):
            tokens[b, : len(s)] = torch.tensor(s)
            appended[b, len(self.prefixes[i]) : len(s)] = True
        end = torch.tensor([len(s) - 1 for s in seqs])
        return tokens.to(device), end.to(device), appended.to(device)


class VProbe(nn.Module):
    """Rank-r embedding update (``U[token] @ V``; every token, or ``update="appended"``) + linear head at
    ``layer``'s ``[END]`` state."""

    def __init__(self, d_vocab: int, d_model: int, n_classes: int, layer: int, rank: int = 8, seed: int = 0,
                 update: str = "all"):
        super().__init__()
        if update not in UPDATES:
            raise ValueError(f"field 'update' = {update!r}: must be one of {UPDATES}")
        gen = torch.Generator().manual_seed(seed)
        self.layer, self.rank, self.update = layer, rank, update
        #: filled by :func:`fit_v_probe`: steps, converged, stop reason, validation curve, train accuracy
        self.fit_info: dict[str, Any] = {}
        self.U = nn.Parameter(torch.zeros(d_vocab, rank))  # zero: the probe starts from the model's own embedding
        self.V = nn.Parameter(torch.randn(rank, d_model, generator=gen) / d_model**0.5)
        with seeded(seed):
            self.head = nn.Linear(d_model, n_classes)

    def states(self, model, tokens: Int[torch.Tensor, "b pos"], end: Int[torch.Tensor, " b"],
               appended: torch.Tensor) -> Float[torch.Tensor, "b d_model"]:
        """The normalised residual at ``[END]`` with the embedding update hooked in."""

        def add_update(module, inputs, embed):
            delta = self.U[tokens] @ self.V
            if self.update == "all":
                return embed + delta
            return embed + delta * appended[..., None].to(embed.dtype)

        # a handle of our own on hook_embed, removed in ``finally``: other hooks the user attached stay in place
        handle = model.hook_embed.register_forward_hook(add_update)
        try:
            with fused(model):
                resid = model(tokens, stop_at_layer=self.layer)
        finally:
            handle.remove()
        x = resid[torch.arange(tokens.shape[0], device=tokens.device), end]
        return F.layer_norm(x.float(), x.shape[-1:])

    def forward(self, model, tokens, end, appended) -> Float[torch.Tensor, "b n_classes"]:
        """Class scores at ``[END]`` (the head on :meth:`states`)."""
        return self.head(self.states(model, tokens, end, appended))

    @torch.no_grad()
    def all_states(self, model, ex: VExamples, batch_size: int = 64) -> Float[torch.Tensor, "n d_model"]:
        """States of every example, in batches of similar length (little padding), returned in input order."""
        dev = model.W_E.device
        order = sorted(range(len(ex)), key=ex.length)
        out = torch.zeros(len(ex), model.cfg.d_model)
        for s in range(0, len(ex), batch_size):
            rows = order[s : s + batch_size]
            out[rows] = self.states(model, *ex.batch(rows, device=dev)).cpu()
        return out

    @torch.no_grad()
    def predict(self, model, ex: VExamples, batch_size: int = 64) -> Int[torch.Tensor, " n"]:
        """Predicted class of every example, in input order."""
        return self.head(self.all_states(model, ex, batch_size).to(self.head.weight.device)).argmax(-1).cpu()

    @torch.no_grad()
    def fires(self, model, ids: list[int], start: int) -> bool:
        """Decoding-time use (the regret detector): label 0 ("cannot be computed") at the last token of ``ids``,
        the tokens from ``start`` on counting as the appended ones."""
        tokens = torch.tensor([ids], device=model.W_E.device)
        end = torch.tensor([len(ids) - 1], device=tokens.device)
        appended = torch.arange(len(ids), device=tokens.device)[None] >= start
        return bool(self(model, tokens, end, appended).argmax(-1)[0] == 0)


@dataclass(frozen=True)
class VFit:
    """How a V-probe is fitted (one frozen spec object, passed whole): Adam's ``lr`` and ``batch_size``, a check of
    the validation figure every ``check_every`` joint steps, at most ``max_steps`` joint steps, the validation split
    ``val_fraction`` of the training examples (at most ``max_val``: each check runs the model on all of them), and
    the stopping ``rule``. ``stop="loss"`` keeps the old rule (the
    training loss's running mean stops falling by ``tol`` over ``patience`` steps) for comparison."""
    lr: float = 2e-3
    batch_size: int = 64
    check_every: int = 20
    max_steps: int = 2000
    val_fraction: float = 0.2
    max_val: int = 500
    rule: FigureStop = FigureStop(min_delta=0.001, patience=4)
    stop: str = "figure"
    head_iter: int = 100
    head_examples: int = 4096

    def __post_init__(self) -> None:
        for name in ("batch_size", "check_every", "max_steps", "head_iter", "max_val", "head_examples"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"field {name!r} = {v!r}: must be a positive int")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"field 'lr' = {self.lr!r}: must be a finite number > 0")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"field 'val_fraction' = {self.val_fraction!r}: must be in (0, 1)")
        if self.stop not in STOP_RULES:
            raise ValueError(f"field 'stop' = {self.stop!r}: must be one of {list(STOP_RULES)}")

    def as_dict(self) -> dict[str, Any]:
        """The spec as plain JSON, for a result's ``settings``."""
        return {"lr": self.lr, "batch_size": self.batch_size, "check_every": self.check_every,
                "max_steps": self.max_steps, "val_fraction": self.val_fraction, "max_val": self.max_val,
                "stop": self.stop,
                "min_delta": self.rule.min_delta, "patience": self.rule.patience,
                "relative_patience": self.rule.relative_patience}


def check_fits(model, ex: VExamples) -> None:
    longest = max(ex.length(i) for i in range(len(ex)))
    if longest > model.cfg.n_ctx:
        raise ValueError(f"probe inputs of up to {longest} tokens exceed the model's n_ctx = {model.cfg.n_ctx}")


def bucketed_batches(ex: VExamples, batch_size: int, rng: random.Random, bucket: int = 8):
    """An endless stream of row lists: each pass over the pool is a fresh shuffle, cut into chunks of
    ``bucket`` batches sorted by length, so a batch holds rows of similar length (little padding) while every row
    is drawn once per pass (the expected gradient is the full pool's)."""
    while True:
        rows = list(range(len(ex)))
        rng.shuffle(rows)
        batches = []
        for s in range(0, len(rows), batch_size * bucket):
            chunk = sorted(rows[s : s + batch_size * bucket], key=ex.length)
            batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        yield from batches


def split_validation(ex: VExamples, fraction: float, max_val: int | None = None) -> tuple[VExamples, VExamples]:
    """``(train, validation)``: the last ``fraction`` of the examples (at most ``max_val``) is the validation split.
    The caller keeps a problem's queries together (they are consecutive), so the split is by problem, like the test
    set (but for the one problem the cut may fall in)."""
    n_val = int(round(fraction * len(ex)))
    n_val = min(n_val, max_val) if max_val is not None and n_val > 1 else n_val
    if n_val < 1 or n_val >= len(ex):
        raise ValueError(f"val_fraction = {fraction!r} of {len(ex)} examples leaves no validation or training split")
    return ex.subset(range(len(ex) - n_val)), ex.subset(range(len(ex) - n_val, len(ex)))


def fit_head(states: Float[torch.Tensor, "n d"], labels: Int[torch.Tensor, " n"], head: nn.Linear,
             max_iter: int = 100, l2: float = 1e-4, monitor: FigureMonitor | None = None) -> None:
    """Fit ``head`` (in place) on fixed states: L-BFGS on the convex softmax regression, stopped by ``monitor``
    (the validation figure) when given, else run to L-BFGS's own tolerance."""
    from plm_interp.probes.lbfgs import fit_lbfgs

    def loss():
        return F.cross_entropy(head(states), labels) + l2 * head.weight.square().sum()

    fit_lbfgs(loss, head.parameters(), max_iter=max_iter, monitor=monitor)


def fit_v_probe(model, train: VExamples, layer: int, n_classes: int, rank: int = 8, fit: VFit = VFit(),
                seed: int = 0, update: str = "all", progress: bool = False, desc: str = "v_probe") -> VProbe:
    """Train a :class:`VProbe` on the frozen ``model`` (its parameters get no gradient and stay unchanged), by the
    two stages of the module doc; ``fit_info`` records the joint steps, whether the rule (not ``max_steps``) ended the
    fit, why, the validation curve, and the training and validation accuracy at the kept weights."""
    from tqdm.auto import tqdm

    layer = check_layer(model, layer)
    if len(train) < 2:
        raise ValueError(f"{len(train)} probe training example(s): need at least 2 (a training and a validation one)")
    check_fits(model, train)
    fit_ex, val_ex = split_validation(train, fit.val_fraction, fit.max_val)
    dev = model.W_E.device
    probe = VProbe(model.cfg.d_vocab, model.cfg.d_model, n_classes, layer, rank, seed, update).to(dev)
    grad_state = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    rng = random.Random(f"v_probe-batches:{seed}")
    labels, y_val = fit_ex.labels.to(dev), val_ex.labels.to(dev)

    def val_acc() -> float:
        return float((probe.predict(model, val_ex).to(dev) == y_val).float().mean())

    taken, converged, reason, curve = 0, False, "", []
    try:
        # stage 1: the head on the model's own states (update zero), stopped by the validation figure. It starts
        # at the majority guess (zero weights, log-prior bias), so the first check is that guess: a fit can only
        # keep weights that beat it on validation data
        prior = torch.bincount(labels, minlength=n_classes).float().clamp_min(0.5)
        with torch.no_grad():
            probe.head.weight.zero_()
            probe.head.bias.copy_((prior / prior.sum()).log())
        head_ex = fit_ex.subset(range(min(len(fit_ex), fit.head_examples)))  # forward passes are the cost
        states, v_states = probe.all_states(model, head_ex).to(dev), probe.all_states(model, val_ex).to(dev)
        head_monitor = FigureMonitor.of(
            lambda: float((probe.head(v_states).argmax(-1) == y_val).float().mean()), probe.head.parameters(),
            fit.rule) if fit.stop == "figure" else None
        fit_head(states, head_ex.labels.to(dev), probe.head, fit.head_iter, monitor=head_monitor)
        # stage 2: head and update jointly
        opt = torch.optim.Adam(probe.parameters(), lr=fit.lr)
        monitor = FigureMonitor.of(val_acc, probe.parameters(), fit.rule) if fit.stop == "figure" else None
        if monitor is not None:
            monitor.check(0)
        batches = bucketed_batches(fit_ex, fit.batch_size, rng)
        ema, best, since = None, float("inf"), 0
        for step in tqdm(range(1, fit.max_steps + 1), desc=desc, disable=not progress, leave=False):
            rows = next(batches)
            loss = F.cross_entropy(probe(model, *fit_ex.batch(rows, device=dev)), labels[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            taken = step
            if monitor is not None:
                if step % fit.check_every == 0 and monitor.check(step):
                    converged, reason = monitor.converged, monitor.reason
                    break
                continue
            lv = float(loss.detach())  # stop="loss": the running training loss stops falling by 1% over 25 steps
            ema = lv if ema is None else 0.9 * ema + 0.1 * lv
            best, since = (ema, 0) if ema < best * 0.99 else (best, since + 1)
            if since >= 25:
                converged, reason = True, "training loss plateaued"
                break
        reason = reason or f"max_steps = {fit.max_steps} reached"
        if monitor is not None:
            monitor.restore()
            curve = monitor.curve
    finally:
        for p, g in zip(model.parameters(), grad_state):
            p.requires_grad_(g)
    probe.eval()
    with torch.no_grad():  # the fit's own record (training subset and validation): a fit check, not a figure
        check = fit_ex.subset(range(min(len(fit_ex), 512)))
        logits = probe.head(probe.all_states(model, check).to(dev))
        y = check.labels.to(dev)
        probe.fit_info = {"steps": taken, "converged": converged, "stop_reason": reason,
                          "train_loss": float(F.cross_entropy(logits, y)),
                          "train_acc": float((logits.argmax(-1) == y).float().mean()),
                          # the monitor already measured the kept weights' validation figure: no second pass
                          "val_acc": monitor.best if monitor is not None else val_acc(), "n_val": len(val_ex),
                          "val_curve": curve}
    return probe


#: a held-out figure this far (a fraction) below the majority guess marks the fit as failed: a head with a bias can
#: always reach the majority guess (half a point allows for the sampling noise of a majority near 1)
FIT_FAILED_MARGIN = 0.005


def score(pred: torch.Tensor, labels: torch.Tensor, train_labels: torch.Tensor) -> dict[str, Any]:
    """Accuracy overall and per label value, the balanced accuracy (mean of the per-label accuracies), the
    majority (of the training labels) guess's accuracy, and ``fit_failed``: the figure is below that guess by more
    than :data:`FIT_FAILED_MARGIN` (then it says the fit failed, not that the model lacks the property)."""
    majority = int(torch.bincount(train_labels).argmax())
    by = {int(v): float((pred[labels == v] == v).float().mean()) for v in labels.unique().tolist()}
    n_by = {int(v): int((labels == v).sum()) for v in labels.unique().tolist()}
    acc, maj = float((pred == labels).float().mean()), float((labels == majority).float().mean())
    return {"acc": acc, "majority": maj, "majority_label": majority, "balanced_acc": sum(by.values()) / max(len(by), 1),
            "by_label": by, "n_by_label": n_by, "n": int(labels.numel()), "fit_failed": acc < maj - FIT_FAILED_MARGIN}
