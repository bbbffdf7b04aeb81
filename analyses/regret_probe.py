"""Error detection, the "regret" probe (Part 2.2): right after writing "Define A as", does the model know that A
cannot be computed yet?

Training data comes from true solutions: at the start of solution sentence t, the prefix is followed by
"Define A as" where A is either a parameter that can be computed now (label 1) or one that cannot — not ready or
already defined (label 0), drawn 50/50. A linear head (after a parameter-free layer norm) reads the frozen
model's residual at the "as" token. No tokens are appended, so no embedding update is needed.

It is then scored (1) on held-out examples of the same kind and (2) on the model's *own* first mistakes: greedy
solutions are verified, and at the first wrong sentence whose parameter could not be computed (``not_ready``,
``redefined``, ``unknown_param``) the probe should fire. It should stay quiet on the model's correct sentences.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import nn

from analyses._igsm_common import check_positive, eval_problems, greedy_generate, igsm_task, \
    sentence_spans, verify_ids
from analyses._task import subjects as control_subjects
from analyses.registry import register
from analyses.result import AnalysisResult
from plm_interp.probes.seeding import seeded
from analyses.v_probe import layer_list
from plm_interp.probes import check_layer
from plm_interp.probes.activations import hook_name
from tasks.igsm import Problem, encode, true_labels

#: error kinds where the written parameter could not be computed at that point: what a regret should catch
CANNOT_COMPUTE = ("not_ready", "redefined", "unknown_param")


class RegretProbe(nn.Module):
    """Linear head on the normalised ``layer`` residual at "as": logit of "A can be computed now"."""

    def __init__(self, d_model: int, layer: int, hook: str, seed: int = 0):
        super().__init__()
        self.layer, self.hook = layer, hook  # ``hook``: where the state is read (for decoding-time use)
        with seeded(seed):
            self.head = nn.Linear(d_model, 2)

    def forward(self, states: Float[torch.Tensor, "b d_model"]) -> Float[torch.Tensor, "b 2"]:
        return self.head(F.layer_norm(states.float(), states.shape[-1:]))

    def fires(self, state: Float[torch.Tensor, " d_model"]) -> bool:
        """True when the probe says A cannot be computed (the model "regrets")."""
        with torch.no_grad():
            return bool(self(state[None]).argmax(-1)[0] == 0)


@torch.no_grad()
def states_at(model, seqs: list[list[int]], positions: list[int], layer: int, batch_size: int = 32
              ) -> Float[torch.Tensor, "n d_model"]:
    """Residual at ``layer`` at one position per sequence (right-padded batches; the model is causal)."""
    out = []
    dev = model.W_E.device
    for s in range(0, len(seqs), batch_size):
        chunk = seqs[s : s + batch_size]
        width = max(len(x) for x in chunk)
        tokens = torch.zeros((len(chunk), width), dtype=torch.long)
        for b, x in enumerate(chunk):
            tokens[b, : len(x)] = torch.tensor(x)
        resid = model(tokens.to(dev), stop_at_layer=layer)
        out.append(resid[torch.arange(len(chunk)), torch.tensor(positions[s : s + batch_size])].cpu())
    return torch.cat(out)


def regret_examples(task, problems: list[Problem], per_problem: int = 4, seed: int = 0):
    """``(sequences, positions of "as", labels)`` from true solutions (see the module docstring)."""
    tok, rng = task.tokenizer, random.Random(f"regret:{seed}")
    define, as_ = tok.ids["Define"], tok.ids["as"]
    seqs, pos, labels = [], [], []
    for p in problems:
        lb = true_labels(p, tok)
        ids = encode(p, tok).ids
        st = p.structure
        for _ in range(per_problem):
            t = rng.randrange(len(lb.pos_steps) - 1)  # a sentence follows this point
            y = rng.random() < 0.5
            pool = [a for a in range(len(lb.params)) if bool(lb.can_next[t, a]) == y]
            if not pool:
                y, pool = not y, [a for a in range(len(lb.params)) if bool(lb.can_next[t, a]) != y]
            a = rng.choice(pool)
            seq = ids[: lb.pos_steps[t] + 1] + [define] + tok.encode(st.param_name(lb.params[a])) + [as_]
            seqs.append(seq)
            pos.append(len(seq) - 1)
            labels.append(int(y))
    return seqs, pos, torch.tensor(labels)


def fit_regret_probe(model, task, problems: list[Problem], layer: int | None = None, per_problem: int = 4,
                     steps: int = 300, lr: float = 1e-2, seed: int = 0) -> RegretProbe:
    """Train the regret probe on ``problems``' true solutions (full-batch AdamW on cached states)."""
    layer = model.cfg.n_layers if layer is None else check_layer(model, layer)
    seqs, pos, y = regret_examples(task, problems, per_problem, seed)
    x = states_at(model, seqs, pos, layer)
    probe = RegretProbe(model.cfg.d_model, layer, hook_name(model, layer), seed)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-3)
    for _ in range(steps):
        loss = F.cross_entropy(probe(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return probe.eval().to(model.W_E.device)


def first_mistakes(model, task, problems: list[Problem], ids: list[list[int]]):
    """For each wrong generation whose first error is a parameter that could not be computed: (seq, "as" pos, kind).

    Also returns the "as" positions of the correct sentences written before it (the probe should not fire there).
    """
    tok = task.tokenizer
    as_ = tok.ids["as"]
    wrong, right = [], []
    for p, x in zip(problems, ids):
        rep = verify_ids(p, tok, x)
        spans = sentence_spans(tok, x)
        for s in rep.accepted:
            a, b = spans[s.index]
            if as_ in x[a:b]:
                right.append((x, a + x[a:b].index(as_)))
        if rep.error_kind in CANNOT_COMPUTE and rep.error_step is not None and rep.error_step < len(spans):
            a, b = spans[rep.error_step]
            if as_ in x[a:b]:
                wrong.append((x, a + x[a:b].index(as_), rep.error_kind))
    return wrong, right


@dataclass
class RegretProbeResult(AnalysisResult):
    """Regret (error-detection) probe per model and layer: held-out accuracy, detection and false-alarm rates."""
    layers: list[int]
    #: per (model, layer): acc (held-out), majority, detect (fires on real first mistakes), false_alarm, n_mistakes
    records: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def record(self, layer: int | None = None, model: str = "trained") -> dict[str, Any]:
        layer = self.layers[-1] if layer is None else layer
        return next(r for r in self.records if (r["model"], r["layer"]) == (model, layer))

    def rows(self) -> list[dict[str, Any]]:
        return self.records

    def plot(self):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        names = [f"{r['model']} L{r['layer']}" for r in self.records]
        x = torch.arange(len(names)).float()
        for i, (k, lab) in enumerate((("acc", "held-out acc"), ("detect", "first mistakes caught"),
                                      ("false_alarm", "false alarms"))):
            ax.bar(x + 0.27 * (i - 1), [100 * (r[k] if r[k] == r[k] else 0) for r in self.records], 0.27, label=lab)
        ax.set_xticks(x, names, fontsize=7)
        ax.set_ylabel("%")
        ax.set_title("regret (error-detection) probe")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig


@register("regret_probe")
def regret_probe(model, task=None, layer: int | list[int] | str | None = None, n_train: int = 512, n_test: int = 128,
                 per_problem: int = 4, n_gen: int = 64, mistake_sets: tuple[str, ...] | None = None,
                 max_new_tokens: int = 256, controls: bool = True, seed: int = 0, progress: bool = True
                 ) -> RegretProbeResult:
    """Fit the regret probe at ``layer`` (default last) and score it held-out and on real first mistakes.

    Mistakes come from greedy solutions to ``n_gen`` problems of each of ``mistake_sets`` (default: the task's
    in-distribution set and its OOD ops, where mistakes are common).
    """
    task = igsm_task(model, task)
    layers = layer_list(model, layer)
    check_positive(n_train=n_train, n_test=n_test, per_problem=per_problem, n_gen=n_gen)
    train = [s.problem for s in task.sample(n_train, seed=seed).samples]
    test = [s.problem for s in task.sample(n_test, seed=seed + 1).samples]
    if mistake_sets is None:
        from tasks.igsm.task import OOD_OPS

        mistake_sets = ("in",) + tuple(f"op={k}" for k in OOD_OPS[task.preset])
    gen_sets = eval_problems(task, n_gen, mistake_sets, seed + 1234)
    gen_problems = [p for ps in gen_sets.values() for p in ps]
    ids = greedy_generate(model, gen_problems, task.tokenizer, max_new_tokens, progress, desc="regret_probe generate")
    wrong, right = first_mistakes(model, task, gen_problems, ids)
    te_seqs, te_pos, te_y = regret_examples(task, test, per_problem, seed + 1)
    subjects = control_subjects(model, controls, seed)
    records = []
    for name, subject in subjects.items():
        for l in layers:
            probe = fit_regret_probe(subject, task, train, l, per_problem, seed=seed)
            with torch.no_grad():
                pred = probe(states_at(subject, te_seqs, te_pos, l)).argmax(-1)
                fire = lambda items: probe(states_at(subject, [w[0] for w in items], [w[1] for w in items], l)
                                           ).argmax(-1) == 0 if items else torch.zeros(0, dtype=torch.bool)
                caught, alarms = fire(wrong), fire(right)
            majority = int(torch.bincount(te_y, minlength=2).argmax())
            records.append({"model": name, "layer": l, "acc": float((pred == te_y).float().mean()),
                            "majority": float((te_y == majority).float().mean()), "n": len(te_y),
                            "detect": float(caught.float().mean()) if len(wrong) else float("nan"),
                            "n_mistakes": len(wrong),
                            "false_alarm": float(alarms.float().mean()) if len(right) else float("nan"),
                            "n_correct_steps": len(right)})
    return RegretProbeResult(layers, records, {"n_train": n_train, "n_test": n_test, "per_problem": per_problem,
                                               "n_gen": n_gen, "mistake_sets": list(mistake_sets), "seed": seed})
