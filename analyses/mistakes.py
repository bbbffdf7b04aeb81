"""Mistake analysis (Part 2.1): at a wrong generation's first wrong step, what did the model believe?

The can_next and nece_next V-probes (:mod:`plm_interp.probes.v_probe`) are trained on true solutions; then, on the
model's own wrong greedy solutions, they are asked about the parameter A that the first wrong sentence defines,
at the end of the previous sentence (before the model wrote "Define A"). If can_next(A) comes out "yes" while the
truth is "no", the model *believed* A was ready: the mistake is in its mental state, not in writing it down —
the paper's finding for most ``not_ready`` mistakes. Rows are grouped by the verifier's error kind.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from analyses.registry import register
from analyses.shared.decoding import greedy_generate
from analyses.shared.igsm_inputs import check_positive, default_sets, eval_problems, igsm_task
from analyses.shared.igsm_text import param_names, sentence_spans, verify_ids
from analyses.shared.plots import grouped_bars
from analyses.shared.records import RecordsResult
from analyses.shared.v_queries import probe_examples
from plm_interp.probes.stopping import coerce_spec
from plm_interp.probes import VExamples, VFit, check_layer, fit_v_probe
from tasks.igsm import labels_along, probe_suffix


def wrong_step_queries(task, problems, ids) -> tuple[VExamples, list[str], list[dict[str, int]]]:
    """Probe inputs at each wrong generation's first wrong sentence that names a real parameter.

    Returns the examples (labels: the true can_next), the error kinds and the true labels (can_next, nece_next).
    """
    tok = task.tokenizer
    define = tok.ids["Define"]
    as_ = tok.ids["as"]
    pre, suf, kinds, truth = [], [], [], []
    for p, x in zip(problems, ids):
        rep = verify_ids(p, tok, x)
        spans = sentence_spans(tok, x)
        if rep.correct or rep.error_step is None or rep.error_step >= len(spans):
            continue
        a, b = spans[rep.error_step]
        seg = x[a : b + 1]
        if not seg or seg[0] != define or as_ not in seg:
            continue
        param = param_names(p, tok).get(tuple(seg[1 : seg.index(as_)]))
        if param is None:
            continue
        lb = labels_along(p, tok, x)
        t = len(rep.accepted)  # the state before the wrong sentence
        col = lb.params.index(param)
        pre.append(x[:a])
        suf.append(probe_suffix(p, tok, param))
        kinds.append(rep.error_kind)
        truth.append({"can_next": int(lb.can_next[t, col]), "nece_next": int(lb.nece_next[t, col])})
    labels = torch.tensor([d["can_next"] for d in truth], dtype=torch.long)
    return VExamples(pre, suf, labels), kinds, truth


@dataclass
class MistakesResult(RecordsResult):
    """Per error kind: can_next / nece_next probe belief vs the truth at the model's first wrong steps.

    ``records``: per error kind (and "all"): n, believed_can_next (probe says ready), true_can_next, believed /
    true nece_next.
    """

    def plot(self):
        series = {lab: [100 * r[k] for r in self.records] for k, lab in (
            ("believed_can_next", "probe: can_next"), ("true_can_next", "truth: can_next"),
            ("believed_nece_next", "probe: nece_next"))}
        return grouped_bars([r["error_kind"] for r in self.records], series, "% of first wrong steps",
                            "what the model believed at its first mistake")


@register("mistakes")
def mistakes(model, task=None, n: int = 64, sets: tuple[str, ...] | None = None, layer: int | None = None,
             rank: int = 8, n_train: int = 2000, per_problem: int = 4, fit: VFit | dict | None = None,
             max_new_tokens: int = 256, seed: int = 0, progress: bool = True) -> MistakesResult:
    """Train can_next / nece_next V-probes at ``layer`` (default last), then read them at the first wrong step of
    greedy solutions to ``n`` problems of each of ``sets`` (default: in-distribution and the OOD ops)."""
    task = igsm_task(model, task)
    layer = model.cfg.n_layers if layer is None else check_layer(model, layer)
    check_positive(n=n, n_train=n_train, per_problem=per_problem, max_new_tokens=max_new_tokens)
    sets = default_sets(task) if sets is None else sets
    probs = [p for ps in eval_problems(task, n, sets, seed + 1234).values() for p in ps]
    ids = greedy_generate(model, probs, task.tokenizer, max_new_tokens, progress, desc="mistakes generate")
    queries, kinds, truth = wrong_step_queries(task, probs, ids)
    train_problems = [s.problem for s in task.sample(n_train, seed=seed).samples]
    fit = coerce_spec(VFit, fit, "fit")
    preds = {}
    for name in ("can_next", "nece_next"):
        if not len(queries):
            break
        ex = probe_examples(task, train_problems, name, per_problem, seed, balanced=True)
        vp = fit_v_probe(model, ex, layer, 2, rank, fit, seed=seed, progress=progress, desc=f"mistakes {name}")
        preds[name] = vp.predict(model, queries)
    records = []
    for kind in sorted(set(kinds)) + ["all"]:
        rows = [i for i, k in enumerate(kinds) if kind in ("all", k)]
        mean = lambda v: float(sum(v) / len(v)) if v else float("nan")
        records.append({"error_kind": kind, "n": len(rows),
                        "believed_can_next": mean([int(preds["can_next"][i]) for i in rows]) if preds else float("nan"),
                        "true_can_next": mean([truth[i]["can_next"] for i in rows]),
                        "believed_nece_next": mean([int(preds["nece_next"][i]) for i in rows]) if preds else float("nan"),
                        "true_nece_next": mean([truth[i]["nece_next"] for i in rows])})
    return MistakesResult(records, {"n": n, "sets": list(sets), "layer": layer, "rank": rank, "n_train": n_train,
                                    "n_wrong_generations": sum(1 for p, x in zip(probs, ids)
                                                               if not verify_ids(p, task.tokenizer, x).correct),
                                    "seed": seed, **fit.as_dict()})
