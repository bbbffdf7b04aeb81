"""V-probing (Part 2.1): does the frozen model's hidden state know nece / dep / known / value / can_next / nece_next?

The paper's recipe: cut the sequence at the probe position, append ``[START] A [END]`` (or ``[START] A [MID] B
[END]`` for ``dep``), freeze the model, and train (1) a rank-r update of the input embedding and (2) a linear head
on the chosen layer's state at ``[END]``. The embedding update lets the probe "ask about A" in tokens the model
never saw in training, while being too small (r = 8) to compute the answer itself.

Here the rank-r update ``U[token] @ V`` is added by a forward hook on ``hook_embed`` (the TransformerLens way),
to the appended tokens only: the model's weights never change, and the states of the original prefix are
exactly the model's own. The head reads the residual stream at ``[END]`` after a parameter-free layer norm (so
one learning rate serves every layer). Positions (the paper's): ``nece`` at the end of the question, ``dep`` at
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

from analyses._igsm_common import check_positive, igsm_task
from analyses._task import subjects as control_subjects
from analyses.registry import register
from analyses.result import AnalysisResult
from plm_interp.probes import check_layer
from plm_interp.probes.seeding import seeded
from tasks.igsm import Problem, probe_suffix, true_labels

PROBES = ("nece", "dep", "known", "value", "can_next", "nece_next")
#: CPU-sized training defaults; the paper trains longer on GPU
CPU_FIT = dict(steps=300, lr=3e-3, batch_size=32)


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
    """Rank-r embedding update (``U[token] @ V``, on appended tokens) + linear head at ``layer``'s ``[END]`` state."""

    def __init__(self, d_vocab: int, d_model: int, n_classes: int, layer: int, rank: int = 8, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.layer, self.rank = layer, rank
        self.U = nn.Parameter(torch.zeros(d_vocab, rank))  # zero: the probe starts from the model's own embedding
        self.V = nn.Parameter(torch.randn(rank, d_model, generator=gen) / d_model**0.5)
        with seeded(seed):
            self.head = nn.Linear(d_model, n_classes)

    def states(self, model, tokens: Int[torch.Tensor, "b pos"], end: Int[torch.Tensor, " b"],
               appended: torch.Tensor) -> Float[torch.Tensor, "b d_model"]:
        """The normalised residual at ``[END]`` with the embedding update hooked in."""

        def add_update(module, inputs, embed):
            delta = self.U[tokens] @ self.V
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
    def predict(self, model, ex: VExamples, batch_size: int = 64) -> Int[torch.Tensor, " n"]:
        dev = model.W_E.device
        out = []
        for s in range(0, len(ex), batch_size):
            rows = list(range(s, min(s + batch_size, len(ex))))
            out.append(self(model, *ex.batch(rows, device=dev)).argmax(-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def check_fits(model, ex: VExamples) -> None:
    longest = max(len(p) + len(s) for p, s in zip(ex.prefixes, ex.suffixes))
    if longest > model.cfg.n_ctx:
        raise ValueError(f"probe inputs of up to {longest} tokens exceed the model's n_ctx = {model.cfg.n_ctx}")


def fit_v_probe(model, train: VExamples, layer: int, n_classes: int, rank: int = 8, steps: int = 300,
                lr: float = 3e-3, batch_size: int = 32, seed: int = 0, progress: bool = False,
                desc: str = "v_probe") -> VProbe:
    """Train a :class:`VProbe` on the frozen ``model`` (its parameters get no gradient and stay unchanged)."""
    from tqdm.auto import tqdm

    layer = check_layer(model, layer)
    check_positive(rank=rank, steps=steps, batch_size=batch_size)
    if len(train) == 0:
        raise ValueError("no probe training examples")
    check_fits(model, train)
    dev = model.W_E.device
    probe = VProbe(model.cfg.d_vocab, model.cfg.d_model, n_classes, layer, rank, seed).to(dev)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    grad_state = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    labels = train.labels.to(dev)
    try:
        for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
            rows = torch.randint(len(train), (min(batch_size, len(train)),), generator=gen).tolist()
            logits = probe(model, *train.batch(rows, device=dev))
            loss = F.cross_entropy(logits, labels[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    finally:
        for p, g in zip(model.parameters(), grad_state):
            p.requires_grad_(g)
    return probe.eval()


def score(pred: torch.Tensor, labels: torch.Tensor, train_labels: torch.Tensor) -> dict[str, Any]:
    """Accuracy overall and per label value, and the majority (of the training labels) guess's accuracy."""
    majority = int(torch.bincount(train_labels).argmax())
    by = {int(v): float((pred[labels == v] == v).float().mean()) for v in labels.unique().tolist()}
    return {"acc": float((pred == labels).float().mean()), "majority": float((labels == majority).float().mean()),
            "by_label": by, "n": int(labels.numel())}


# ---- the analysis --------------------------------------------------------------------------------------------


@dataclass
class VProbeResult(AnalysisResult):
    """One V-probe's accuracy, majority baseline and per-label accuracy per model and layer."""
    probe: str
    layers: list[int]
    #: one record per (model, layer): acc, majority, by_label {label: acc}, n
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

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for r in self.records:
            row = {"probe": self.probe, "model": r["model"], "layer": r["layer"], "acc": r["acc"],
                   "majority": r["majority"], "n": r["n"]}
            if len(r["by_label"]) <= 4:
                row.update({f"acc[y={k}]": v for k, v in sorted(r["by_label"].items())})
            out.append(row)
        return out

    def plot(self):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        for model in dict.fromkeys(r["model"] for r in self.records):
            rs = [r for r in self.records if r["model"] == model]
            ax.plot([r["layer"] for r in rs], [100 * r["acc"] for r in rs], "o-", label=model)
        maj = [r for r in self.records if r["model"] == "trained"]
        ax.plot([r["layer"] for r in maj], [100 * r["majority"] for r in maj], "--", color="gray", label="majority")
        ax.set_xlabel("layer")
        ax.set_ylabel("accuracy %")
        ax.set_title(f"V-probe {self.probe}")
        ax.legend(fontsize=7)
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
    n_train: int = 512,
    n_test: int = 128,
    per_problem: int = 4,
    balanced: bool = True,
    steps: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    controls: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> VProbeResult:
    """V-probe ``probe`` at ``layer`` (default the last; a list, or ``"all"`` for the per-layer depth sweep).

    Train/test problems are drawn from the task's train split (seeds ``seed`` / ``seed + 1``), ``per_problem``
    queries each (label-balanced by default; ``balanced=False`` samples queries uniformly, as the paper's
    majority baselines of 55-95% suggest). The same probe on a random-init model of the same architecture is the control.
    """
    if probe not in PROBES:
        raise ValueError(f"field 'probe' = {probe!r}: must be one of {PROBES}")
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
                             desc=f"v_probe {probe} {name} L{l}", **hp)
            records.append({"model": name, "layer": l, **score(vp.predict(subject, test), test.labels, train.labels)})
    return VProbeResult(probe, layers, records, {**hp, "rank": rank, "n_train": n_train, "n_test": n_test,
                                                 "per_problem": per_problem, "balanced": balanced,
                                                 "seed": seed})
