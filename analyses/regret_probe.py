"""Error detection, the "regret" probe (Part 2.2 §3.1): right after writing "Define A as", does the model know
that A cannot be computed yet?

The paper's detector (Part 2.2 §3.1, as PAPERS.md records it) is "the Part 2.1 can_next V-probe read from the
last layer after 'Define [param A] as'", 99% accurate over all parameters. So this module is :mod:`analyses.v_probe`'s machinery with a different suffix:
the true solution is cut at the end of sentence t (or ``<SOL>``), "Define A as" is appended with A drawn uniformly
from all parameters, and the probe (rank-r update of the input embedding + linear head at "as", trained to
convergence on the frozen model) predicts ``can_next[t, A]`` (A not yet computed and all its parents computed).

It is then scored (1) on held-out queries of the same kind, beside the majority guess and the random-init control,
and (2) on the model's *own* first mistakes: greedy solutions are verified, and at the first wrong sentence whose
parameter could not be computed (``not_ready``, ``redefined``, ``unknown_param``) the probe should fire (the catch
rate; the paper: about 60%), while it should stay quiet at the "as" of the model's correct sentences (the
false-alarm rate). Catch and false-alarm rates are always reported together, for the model and the control.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from analyses.shared.decoding import greedy_generate
from analyses.shared.igsm_inputs import check_positive, eval_problems, igsm_task
from analyses.shared.igsm_text import sentence_spans, verify_ids
from analyses.shared.v_queries import fit_regret_probe, regret_examples
from analyses._task import subjects as control_subjects
from analyses.shared.control_cache import subject_records
from analyses.registry import register
from analyses.result import draw_headlines, headline
from analyses.shared.records import LayerRecordsResult
from plm_interp.probes.stopping import coerce_spec
from plm_interp.probes import VExamples, VFit, VProbe, fit_v_probe, resolve_layers, score
from plm_interp.runtime import torch_threads

#: error kinds where the written parameter could not be computed at that point: what a regret should catch
CANNOT_COMPUTE = ("not_ready", "redefined", "unknown_param")
#: the regret probe is a V-probe (kept as a name for callers that type-check detectors)
RegretProbe = VProbe
__all__ = ["CANNOT_COMPUTE", "RegretProbe", "RegretProbeResult", "as_examples", "first_mistakes",
           "fit_regret_probe", "regret_examples", "regret_probe"]


def first_mistakes(model, task, problems: list[Problem], ids: list[list[int]]):
    """Items ``(ids up to "as", sentence start, kind)`` at each generation's first can't-compute mistake, and
    ``(ids up to "as", sentence start)`` at every correct sentence written before it (no alarm wanted there)."""
    tok = task.tokenizer
    as_ = tok.ids["as"]
    wrong, right = [], []
    for p, x in zip(problems, ids):
        rep = verify_ids(p, tok, x)
        spans = sentence_spans(tok, x)
        for s in rep.accepted:
            a, b = spans[s.index]
            if as_ in x[a:b]:
                right.append((x[: a + x[a:b].index(as_) + 1], a))
        if rep.error_kind in CANNOT_COMPUTE and rep.error_step is not None and rep.error_step < len(spans):
            a, b = spans[rep.error_step]
            if as_ in x[a:b]:
                wrong.append((x[: a + x[a:b].index(as_) + 1], a, rep.error_kind))
    return wrong, right


def as_examples(items, label: int) -> VExamples:
    """Model-written sequences ending at "as" as probe inputs (the sentence is the "appended" part)."""
    return VExamples([x[0][: x[1]] for x in items], [x[0][x[1]:] for x in items],
                     torch.full((len(items),), label, dtype=torch.long))


@dataclass
class RegretProbeResult(LayerRecordsResult):
    """Regret probe per model and layer: held-out accuracy (with majority and per label), the catch rate on the
    model's real first mistakes and the false-alarm rate on its correct sentences.

    ``records``: per (model, layer): acc, balanced_acc, majority, by_label, n, detect, n_mistakes, false_alarm,
    n_correct_steps, steps, converged, train_acc."""

    def headlines(self) -> list[dict[str, Any]]:
        t = self.record()
        c = self.record(model="random-init") if self.has_model("random-init") else None
        out = [headline("regret probe held-out acc", t["acc"], t["n"], c and c["acc"], t["majority"])]
        if t.get("fit_failed"):  # a probe with a bias can reach the majority guess: below it, the fit failed
            out[0]["verdict"] = "FIT FAILED (below its majority guess: not a finding); " + out[0]["verdict"]
        if t["n_mistakes"]:
            out.append(headline("first mistakes caught", t["detect"], t["n_mistakes"], c and c["detect"],
                                false_alarm=t["false_alarm"], n_false_alarm=t["n_correct_steps"],
                                control_false_alarm=c and c["false_alarm"]))
        return out

    def rows(self) -> list[dict[str, Any]]:
        keys = ("model", "layer", "acc", "balanced_acc", "majority", "n", "detect", "false_alarm", "n_mistakes",
                "n_correct_steps", "train_acc", "val_acc", "steps", "converged", "fit_failed")
        return [{k: r.get(k) for k in keys} for r in self.records]

    def plot(self):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.4))
        draw_headlines(ax, self.headlines())
        ax.set_title("regret (error-detection) probe: figure, control, majority, false alarms")
        fig.tight_layout()
        return fig


@register("regret_probe")
def regret_probe(model, task=None, layer: int | list[int] | str | None = None, n_train: int = 2000, n_test: int = 250,
                 per_problem: int = 4, n_gen: int = 64, mistake_sets: tuple[str, ...] | None = None,
                 max_new_tokens: int = 256, balanced: bool = False, fit: VFit | dict | None = None, controls: bool = True,
                 seed: int = 0, progress: bool = True) -> RegretProbeResult:
    """Fit the regret probe at ``layer`` (default last) and score it held-out and on real first mistakes.

    Mistakes come from greedy solutions to ``n_gen`` problems of each of ``mistake_sets`` (default: the task's
    in-distribution set and its OOD ops, where mistakes are common). Queries are uniform (``balanced=True``:
    label-balanced training and held-out queries). The probe is fitted as every V-probe is
    (:class:`plm_interp.probes.VFit`: stopped when its validation figure converges).
    """
    fit = coerce_spec(VFit, fit, "fit")
    task = igsm_task(model, task)
    layers = resolve_layers(model, layer)
    check_positive(n_train=n_train, n_test=n_test, per_problem=per_problem, n_gen=n_gen)
    train = regret_examples(task, [s.problem for s in task.sample(n_train, seed=seed).samples], per_problem, seed,
                            balanced)
    test = regret_examples(task, [s.problem for s in task.sample(n_test, seed=seed + 1).samples], per_problem,
                           seed + 1, balanced)
    if mistake_sets is None:
        from tasks.igsm.task import OOD_OPS

        mistake_sets = ("in",) + tuple(f"op={k}" for k in OOD_OPS[task.preset])
    gen_sets = eval_problems(task, n_gen, mistake_sets, seed + 1234)
    gen_problems = [p for ps in gen_sets.values() for p in ps]
    ids = greedy_generate(model, gen_problems, task.tokenizer, max_new_tokens, progress, desc="regret_probe generate")
    wrong, right = first_mistakes(model, task, gen_problems, ids)
    wrong_ex, right_ex = as_examples(wrong, 0), as_examples(right, 1)
    records, probes, control_fit = [], {}, None
    with torch_threads() as cores:
        for name, subject in control_subjects(model, controls, seed).items():
            def fitted(name=name, subject=subject):
                out = []
                for l in layers:
                    vp = fit_v_probe(subject, train, l, 2, fit=fit, seed=seed, progress=progress,
                                     desc=f"regret_probe {name} L{l}")
                    probes[(name, l)] = vp
                    fire = lambda ex: vp.predict(subject, ex) == 0 if len(ex) else torch.zeros(0, dtype=torch.bool)
                    caught, alarms = fire(wrong_ex), fire(right_ex)
                    out.append({"model": name, "layer": l,
                                **score(vp.predict(subject, test), test.labels, train.labels),
                                "detect": float(caught.float().mean()) if len(wrong) else float("nan"),
                                "n_mistakes": len(wrong),
                                "false_alarm": float(alarms.float().mean()) if len(right) else float("nan"),
                                "n_correct_steps": len(right), **vp.fit_info})
                return out

            # the control: fitted once per (control, data, mistakes found), then read back (no probe of it then)
            inputs = {"train": train, "test": test, "wrong": wrong_ex, "right": right_ex, "layers": layers,
                      "fit": fit.as_dict(), "seed": seed}
            found, how = subject_records("regret_probe", name, subject, inputs, fitted)
            records, control_fit = records + found, how or control_fit
    settings = {"n_train": n_train, "n_test": n_test, "per_problem": per_problem, "n_gen": n_gen,
                "mistake_sets": list(mistake_sets), "balanced": balanced, "seed": seed, **fit.as_dict(),
                "torch_threads": cores.threads, "control_fit": control_fit,
                "converged": all(r["converged"] for r in records)}
    out = RegretProbeResult(layers=layers, records=records, settings=settings)
    # the probes fitted in this call by (model, layer), e.g. a detector for retry_upon_regret (not saved); a control
    # read back from the cache has no probe here
    out.probes = probes
    return out
