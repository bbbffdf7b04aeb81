"""V-probing (Part 2.1): does the frozen model's hidden state know nece / dep / known / value / can_next / nece_next?

The paper's recipe (Part 2.1 §4.1): cut the sequence at the probe position, append ``[START] A [END]`` (or
``[START] A [MID] B [END]`` for ``dep``), freeze the model, and train "a small trainable rank-8 (linear) update on
the input embedding layer" plus a linear head on the last layer's state at ``[END]``. The embedding update lets the
probe "ask about A" in tokens the model never saw in training, while being too small (r = 8) to compute the answer.

Here the rank-r update ``U[token] @ V`` is added by a forward hook on ``hook_embed`` (the TransformerLens way).
By default it touches every token's embedding, as the paper's "update on the input embedding layer" does;
``update="appended"`` restricts it to the appended tokens (then the prefix states are exactly the model's own).
The model's weights never change. The head reads the residual stream at ``[END]`` after a parameter-free layer
norm (so one learning rate serves every layer).

Queries (Part 2.1 App. E): A (and B) are drawn uniformly from all parameters, and the solution-state probe
positions uniformly from the sentence ends, so the majority guess is high (the paper: 55-95%). The figure is
therefore reported beside the majority guess, the random-init control (Fig. 7) and per label (Fig. 12, where
"false everywhere" would score 83-92%); ``balanced=True`` draws labels 50/50 instead, and every result also
carries the balanced accuracy (mean of the per-label accuracies) as a secondary column.

Training runs to convergence (the paper trains 100k steps on GPU): the head is first fitted on the frozen states
(the update starts at zero) and then head and update are trained jointly until the training loss stops falling
(``tol`` over ``patience`` steps) or ``max_steps``; the result records the steps taken, whether it converged and
the training accuracy. Positions (the paper's): ``nece`` at the end of the question, ``dep`` at
the end of the problem, ``known`` / ``value`` / ``can_next`` / ``nece_next`` at ``<SOL>`` or at the end of a
solution sentence. ``value`` is probed for known parameters only (unknown ones have no value).

    >>> r = v_probe(model, probe="can_next")               # doctest: +SKIP
    >>> r.accuracy(), r.accuracy(model="random-init")       # doctest: +SKIP
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn

from analyses.shared.igsm_inputs import check_positive, igsm_task
from analyses._task import subjects as control_subjects
from analyses.registry import register
from analyses.result import AnalysisResult, draw_headlines, headline
from plm_interp.probes import check_layer
from plm_interp.probes.seeding import seeded
from tasks.igsm import Problem, probe_suffix, true_labels

PROBES = ("nece", "dep", "known", "value", "can_next", "nece_next")
#: CPU-sized training defaults: the joint stage stops when the loss plateaus, ``steps`` is only its ceiling
CPU_FIT = dict(steps=100, lr=3e-3, batch_size=32)
UPDATES = ("all", "appended")


# ---- examples ------------------------------------------------------------------------------------------------


@dataclass
class VExamples:
    """Probe inputs: ``prefix`` (cut at the probe position) + ``suffix`` (``[START] A ... [END]``) -> ``labels``."""

    prefixes: list[list[int]]
    suffixes: list[list[int]]
    labels: Int[torch.Tensor, " n"]

    def __len__(self) -> int:
        return len(self.prefixes)

    def subset(self, rows) -> "VExamples":
        rows = list(rows)
        return VExamples([self.prefixes[i] for i in rows], [self.suffixes[i] for i in rows], self.labels[rows])

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


def probe_examples(task, problems: list[Problem], probe: str, per_problem: int = 4, seed: int = 0,
                   balanced: bool = False) -> VExamples:
    """Up to ``per_problem`` random queries per problem, labelled from the true graph.

    A query is a parameter A (a pair (A, B) for ``dep``) and, for the solution-state probes, a step (``<SOL>`` or
    a sentence end). With ``balanced`` a binary probe draws its label 50/50 first (when the problem has both),
    so accuracy is not dominated by the majority class (``known`` is ~97% "no" on uniform queries).
    """
    if probe not in PROBES:
        raise ValueError(f"field 'probe' = {probe!r}: must be one of {PROBES}")
    tok, rng = task.tokenizer, random.Random(f"v_probe:{probe}:{seed}")
    pre, suf, lab = [], [], []
    for p in problems:
        lb = true_labels(p, tok)
        ids = task_ids(task, p)
        cands = _candidates(lb, probe)
        by_y: dict[int, list] = {}
        for c in cands:
            by_y.setdefault(c[1], []).append(c)
        for _ in range(per_problem):
            pool = by_y[rng.choice(sorted(by_y))] if balanced and probe != "value" else cands
            pos, y, a, b = rng.choice(pool)
            pre.append(ids[: pos + 1])
            suf.append(probe_suffix(p, tok, lb.params[a], None if b is None else lb.params[b]))
            lab.append(y)
    return VExamples(pre, suf, torch.tensor(lab, dtype=torch.long))


def _candidates(lb, probe: str) -> list[tuple[int, int, int, int | None]]:
    """Every (position, label, A, B) query of one problem."""
    n = len(lb.params)
    if probe == "nece":
        return [(lb.pos_nece, int(lb.nece[a]), a, None) for a in range(n)]
    if probe == "dep":
        return [(lb.pos_dep, int(lb.dep[a, b]), a, b) for a in range(n) for b in range(n) if a != b]
    table = {"known": lb.known, "value": lb.value, "can_next": lb.can_next, "nece_next": lb.nece_next}[probe]
    return [(lb.pos_steps[t], int(table[t, a]), a, None) for t in range(len(lb.pos_steps)) for a in range(n)
            if probe != "value" or lb.known[t, a]]


def task_ids(task, problem: Problem) -> list[int]:
    from tasks.igsm import encode

    return encode(problem, task.tokenizer).ids


def n_classes_of(task, probe: str) -> int:
    return task.config.modulus if probe == "value" else 2


# ---- the probe -----------------------------------------------------------------------------------------------


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
        #: filled by :func:`fit_v_probe`: steps, converged, train_loss, train_acc
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
            resid = model(tokens, stop_at_layer=self.layer)
        finally:
            handle.remove()
        x = resid[torch.arange(tokens.shape[0], device=tokens.device), end]
        return F.layer_norm(x.float(), x.shape[-1:])

    def forward(self, model, tokens, end, appended) -> Float[torch.Tensor, "b n_classes"]:
        return self.head(self.states(model, tokens, end, appended))

    @torch.no_grad()
    def all_states(self, model, ex: VExamples, batch_size: int = 64) -> Float[torch.Tensor, "n d_model"]:
        """States of every example, in batches of similar length (little padding), returned in input order."""
        dev = model.W_E.device
        order = sorted(range(len(ex)), key=lambda i: len(ex.prefixes[i]) + len(ex.suffixes[i]))
        out = torch.zeros(len(ex), model.cfg.d_model)
        for s in range(0, len(ex), batch_size):
            rows = order[s : s + batch_size]
            out[rows] = self.states(model, *ex.batch(rows, device=dev)).cpu()
        return out

    @torch.no_grad()
    def predict(self, model, ex: VExamples, batch_size: int = 64) -> Int[torch.Tensor, " n"]:
        return self.head(self.all_states(model, ex, batch_size).to(self.head.weight.device)).argmax(-1).cpu()

    @torch.no_grad()
    def fires(self, model, ids: list[int], start: int) -> bool:
        """Decoding-time use (the regret detector): label 0 ("cannot be computed") at the last token of ``ids``,
        the tokens from ``start`` on counting as the appended ones."""
        tokens = torch.tensor([ids], device=model.W_E.device)
        end = torch.tensor([len(ids) - 1], device=tokens.device)
        appended = torch.arange(len(ids), device=tokens.device)[None] >= start
        return bool(self(model, tokens, end, appended).argmax(-1)[0] == 0)


def check_fits(model, ex: VExamples) -> None:
    longest = max(len(p) + len(s) for p, s in zip(ex.prefixes, ex.suffixes))
    if longest > model.cfg.n_ctx:
        raise ValueError(f"probe inputs of up to {longest} tokens exceed the model's n_ctx = {model.cfg.n_ctx}")


def fit_head(states: Float[torch.Tensor, "n d"], labels: Int[torch.Tensor, " n"], head: nn.Linear,
             max_iter: int = 200, l2: float = 1e-4) -> None:
    """Fit ``head`` (in place) to convergence on fixed states: L-BFGS on the convex softmax regression."""
    opt = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=max_iter, tolerance_grad=1e-6,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(head(states), labels) + l2 * head.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)


def fit_v_probe(model, train: VExamples, layer: int, n_classes: int, rank: int = 8, steps: int = 100,
                lr: float = 3e-3, batch_size: int = 32, seed: int = 0, progress: bool = False,
                desc: str = "v_probe", update: str = "all", patience: int = 25, tol: float = 0.01,
                head_examples: int = 1024) -> VProbe:
    """Train a :class:`VProbe` on the frozen ``model`` (its parameters get no gradient and stay unchanged).

    Two stages, both to convergence: (1) the head alone on the frozen ``[END]`` states of (up to
    ``head_examples``) training examples (the update starts at zero, so these are the model's own states), by
    L-BFGS; (2) head and rank-r update jointly by AdamW on random minibatches until the running training loss has
    not fallen by a fraction ``tol`` for ``patience`` steps, or ``steps`` (a ceiling). The paper draws fresh
    problems for every batch; a training pool larger than ``steps * batch_size`` comes close (each example seen
    about once), so the running loss tracks held-out loss rather than memorisation. ``fit_info`` records the joint
    steps taken, whether the plateau was reached, and the training loss and accuracy (on the first 256 examples of
    the head-stage subset).
    """
    from tqdm.auto import tqdm

    layer = check_layer(model, layer)
    check_positive(rank=rank, steps=steps, batch_size=batch_size, patience=patience)
    if len(train) == 0:
        raise ValueError("no probe training examples")
    check_fits(model, train)
    dev = model.W_E.device
    probe = VProbe(model.cfg.d_vocab, model.cfg.d_model, n_classes, layer, rank, seed, update).to(dev)
    grad_state = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    labels = train.labels.to(dev)
    taken, converged, best, since = 0, False, float("inf"), 0
    sub = train.subset(range(min(len(train), head_examples)))
    try:
        fit_head(probe.all_states(model, sub).to(dev), sub.labels.to(dev), probe.head)
        opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=0.0)
        ema = None
        for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
            rows = torch.randint(len(train), (min(batch_size, len(train)),), generator=gen).tolist()
            loss = F.cross_entropy(probe(model, *train.batch(rows, device=dev)), labels[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            taken = step + 1
            lv = float(loss.detach())
            ema = lv if ema is None else 0.9 * ema + 0.1 * lv
            if ema < best * (1 - tol):
                best, since = ema, 0
            else:
                since += 1
            if since >= patience or ema < 1e-3:
                converged = True
                break
    finally:
        for p, g in zip(model.parameters(), grad_state):
            p.requires_grad_(g)
    probe.eval()
    with torch.no_grad():  # the training record on (up to) 256 of those examples: a fit check, not a figure
        check = sub.subset(range(min(len(sub), 256)))
        logits = probe.head(probe.all_states(model, check).to(dev))
        y = check.labels.to(dev)
        probe.fit_info = {"steps": taken, "converged": converged,
                          "train_loss": float(F.cross_entropy(logits, y)),
                          "train_acc": float((logits.argmax(-1) == y).float().mean())}
    return probe


def score(pred: torch.Tensor, labels: torch.Tensor, train_labels: torch.Tensor) -> dict[str, Any]:
    """Accuracy overall and per label value, the balanced accuracy (mean of the per-label accuracies), and the
    majority (of the training labels) guess's accuracy."""
    majority = int(torch.bincount(train_labels).argmax())
    by = {int(v): float((pred[labels == v] == v).float().mean()) for v in labels.unique().tolist()}
    n_by = {int(v): int((labels == v).sum()) for v in labels.unique().tolist()}
    return {"acc": float((pred == labels).float().mean()), "majority": float((labels == majority).float().mean()),
            "majority_label": majority, "balanced_acc": sum(by.values()) / max(len(by), 1),
            "by_label": by, "n_by_label": n_by, "n": int(labels.numel())}


# ---- the analysis --------------------------------------------------------------------------------------------


@dataclass
class VProbeResult(AnalysisResult):
    """One V-probe's accuracy beside the majority guess and the random-init control, per model and layer; with
    the balanced accuracy, per-label accuracy and the training record (steps, converged, train accuracy)."""
    probe: str
    layers: list[int]
    #: one record per (model, layer): acc, balanced_acc, majority, by_label {label: acc}, n, steps, converged, ...
    records: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def record(self, layer: int | None = None, model: str = "trained") -> dict[str, Any]:
        layer = self.layers[-1] if layer is None else layer
        for r in self.records:
            if (r["model"], r["layer"]) == (model, layer):
                return r
        raise KeyError((model, layer))

    def accuracy(self, layer: int | None = None, model: str = "trained") -> float:
        return self.record(layer, model)["acc"]

    def headlines(self) -> list[dict[str, Any]]:
        """The last-layer accuracy beside control and majority; for a lopsided label (majority >= 70%, where the
        paper's Fig. 12 splits by label) also each label's accuracy beside the control's on that label."""
        if not any(r["model"] == "trained" for r in self.records):
            return []
        t = self.record()
        c = self.record(model="random-init") if any(r["model"] == "random-init" for r in self.records) else None
        out = [headline(f"{self.probe} acc", t["acc"], t["n"], c and c["acc"], t["majority"])]
        if t["majority"] >= 0.7 and len(t["by_label"]) == 2:
            for y, acc in sorted(t["by_label"].items()):
                out.append(headline(f"{self.probe} acc on label {y}", acc, t["n_by_label"][y],
                                    c and c["by_label"].get(y), 1.0 if y == t["majority_label"] else 0.0))
        out.append(headline(f"{self.probe} balanced acc", t["balanced_acc"], t["n"], c and c["balanced_acc"],
                            1 / max(len(t["by_label"]), 1)))
        return out

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for r in self.records:
            row = {"probe": self.probe, "model": r["model"], "layer": r["layer"], "acc": r["acc"],
                   "balanced acc": r["balanced_acc"], "majority": r["majority"], "n": r["n"]}
            if len(r["by_label"]) <= 4:
                row.update({f"acc[y={k}]": v for k, v in sorted(r["by_label"].items())})
            row.update({"train acc": r.get("train_acc"), "steps": r.get("steps"), "converged": r.get("converged")})
            out.append(row)
        return out

    def plot(self):
        import matplotlib.pyplot as plt

        fig, (ax, hx) = plt.subplots(1, 2, figsize=(9, 3.4))
        for model in dict.fromkeys(r["model"] for r in self.records):
            rs = [r for r in self.records if r["model"] == model]
            ax.plot([r["layer"] for r in rs], [100 * r["acc"] for r in rs], "o-", label=model)
        maj = [r for r in self.records if r["model"] == "trained"]
        ax.plot([r["layer"] for r in maj], [100 * r["majority"] for r in maj], "--", color="gray", label="majority")
        ax.set_xlabel("layer")
        ax.set_ylabel("accuracy %")
        ax.set_title(f"V-probe {self.probe}")
        ax.legend(fontsize=7)
        heads = self.headlines()
        if heads:
            draw_headlines(hx, heads)
            hx.set_title("last layer: figure, control, majority")
        fig.tight_layout()
        return fig


def layer_list(model, layer) -> list[int]:
    if layer is None:
        return [model.cfg.n_layers]
    if layer == "all":
        return list(range(model.cfg.n_layers + 1))
    return [check_layer(model, l) for l in ([layer] if isinstance(layer, int) else layer)]


@register("v_probe")
def v_probe(
    model,
    task=None,
    probe: str = "nece",
    layer: int | list[int] | str | None = None,
    rank: int = 8,
    n_train: int = 1024,
    n_test: int = 128,
    per_problem: int = 4,
    balanced: bool = False,
    update: str = "all",
    steps: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    controls: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> VProbeResult:
    """V-probe ``probe`` at ``layer`` (default the last; a list, or ``"all"`` for the per-layer depth sweep).

    Paper defaults (Part 2.1 §4.1, App. E): queries drawn uniformly from all parameters (``balanced=True`` is the
    label-balanced option), the rank-``rank`` update on the input embedding of every
    token (``update="appended"``: appended tokens only), training until the loss plateaus (``steps`` is the
    ceiling). Train/test problems come from the task's train split (seeds ``seed`` / ``seed + 1``),
    ``per_problem`` queries each; the training pool (4,096 queries by default) is larger than the queries the
    joint stage draws (at most 100 x 32), standing in for the paper's fresh problems per batch. Held-out n =
    ``n_test * per_problem`` (512: a 95% interval of about +-4 points). The same probe on a random-init model of the same architecture is the control
    (Fig. 7); ``.headlines()`` puts the figure beside it, the majority guess, n and a 95% Wilson interval.
    """
    if probe not in PROBES:
        raise ValueError(f"field 'probe' = {probe!r}: must be one of {PROBES}")
    if update not in UPDATES:
        raise ValueError(f"field 'update' = {update!r}: must be one of {UPDATES}")
    task = igsm_task(model, task)
    layers = layer_list(model, layer)
    check_positive(rank=rank, n_train=n_train, n_test=n_test, per_problem=per_problem)
    hp = {k: (v if v is not None else CPU_FIT[k]) for k, v in dict(steps=steps, lr=lr, batch_size=batch_size).items()}
    train = probe_examples(task, [x.problem for x in task.sample(n_train, seed=seed).samples], probe, per_problem, seed, balanced)
    test = probe_examples(task, [x.problem for x in task.sample(n_test, seed=seed + 1).samples], probe, per_problem, seed + 1, balanced)
    check_fits(model, train)
    check_fits(model, test)
    subjects = control_subjects(model, controls, seed)
    records = []
    for name, subject in subjects.items():
        for l in layers:
            vp = fit_v_probe(subject, train, l, n_classes_of(task, probe), rank, seed=seed, progress=progress,
                             desc=f"v_probe {probe} {name} L{l}", update=update, **hp)
            records.append({"model": name, "layer": l, **score(vp.predict(subject, test), test.labels, train.labels),
                            **vp.fit_info})
    return VProbeResult(probe, layers, records, {**hp, "rank": rank, "n_train": n_train, "n_test": n_test,
                                                 "per_problem": per_problem, "balanced": balanced,
                                                 "update": update, "seed": seed})
