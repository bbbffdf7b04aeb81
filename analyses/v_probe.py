"""V-probing (Part 2.1 §4): does the frozen model's hidden state know nece / dep / known / value / can_next /
nece_next?

The probe is the paper's (:mod:`plm_interp.probes.v_probe`: a rank-8 update of the input embedding of every token +
a linear head at ``[END]``), fitted until its validation figure converges (:mod:`plm_interp.probes.stopping`); this
module builds the queries (:mod:`analyses.shared.v_queries`: uniform, at the paper's positions), fits one probe per
model and layer, and presents the held-out figure beside the majority guess, the random-init control (Fig. 7) and
per label (Fig. 12, where "false everywhere" would score 83-92%); ``balanced=True`` draws labels 50/50 instead, and
every result also carries the balanced accuracy (mean of the per-label accuracies) as a secondary column.

A probe with a bias term can always reach the majority guess, so a held-out figure below it means the fit failed,
not that the model lacks the property: such a record is marked ``fit_failed`` and its headline says so.

    >>> r = v_probe(model, probe="can_next")               # doctest: +SKIP
    >>> r.accuracy(), r.accuracy(model="random-init")       # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyses._task import subjects as control_subjects
from analyses.shared.control_cache import subject_records
from analyses.registry import register
from analyses.result import draw_headlines, headline
from analyses.shared.igsm_inputs import check_positive, igsm_task
from analyses.shared.records import LayerRecordsResult
from analyses.shared.v_queries import PROBES, n_classes_of, probe_examples
from plm_interp.probes.stopping import coerce_spec
from plm_interp.probes import VFit, fit_v_probe, resolve_layers, score
from plm_interp.probes.v_probe import UPDATES, check_fits
from plm_interp.runtime import torch_threads

def per_label(record: dict[str, Any], name: str) -> dict[int, Any]:
    """``record[name]`` ({label: value}) with int labels: JSON (a saved result, a cached control) keeps dict keys
    as strings, and label 0 must find label 0 either way."""
    return {int(k): v for k, v in record[name].items()}


@dataclass
class VProbeResult(LayerRecordsResult):
    """One V-probe's accuracy beside the majority guess and the random-init control, per model and layer; with
    the balanced accuracy, per-label accuracy and the training record (steps, converged, train accuracy).

    ``records``: one per (model, layer): acc, balanced_acc, majority, by_label {label: acc}, n, steps, converged,
    ...; ``record(layer, model)`` / ``accuracy(layer, model)`` default to the trained model at the last layer."""
    probe: str = ""

    def headlines(self) -> list[dict[str, Any]]:
        """The last-layer accuracy beside control and majority; for a lopsided label (majority >= 70%, where the
        paper's Fig. 12 splits by label) also each label's accuracy beside the control's on that label."""
        if not self.has_model("trained"):
            return []
        t = self.record()
        c = self.record(model="random-init") if self.has_model("random-init") else None
        out = [headline(f"{self.probe} acc", t["acc"], t["n"], c and c["acc"], t["majority"])]
        if t.get("fit_failed"):  # a probe with a bias can reach the majority guess: below it, the fit failed
            out[0]["verdict"] = "FIT FAILED (below its majority guess: not a finding); " + out[0]["verdict"]
        by, n_by = per_label(t, "by_label"), per_label(t, "n_by_label")
        if t["majority"] >= 0.7 and len(by) == 2:
            for y, acc in sorted(by.items()):
                out.append(headline(f"{self.probe} acc on label {y}", acc, n_by[y],
                                    c and per_label(c, "by_label").get(y), 1.0 if y == t["majority_label"] else 0.0))
        out.append(headline(f"{self.probe} balanced acc", t["balanced_acc"], t["n"], c and c["balanced_acc"],
                            1 / max(len(t["by_label"]), 1)))
        return out

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for r in self.records:
            row = {"probe": self.probe, "model": r["model"], "layer": r["layer"], "acc": r["acc"],
                   "balanced acc": r["balanced_acc"], "majority": r["majority"], "n": r["n"]}
            if len(r["by_label"]) <= 4:
                row.update({f"acc[y={k}]": v for k, v in sorted(per_label(r, "by_label").items())})
            row.update({"train acc": r.get("train_acc"), "val acc": r.get("val_acc"), "steps": r.get("steps"),
                        "converged": r.get("converged"), "fit failed": r.get("fit_failed")})
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


@register("v_probe")
def v_probe(
    model,
    task=None,
    probe: str = "nece",
    layer: int | list[int] | str | None = None,
    rank: int = 8,
    n_train: int = 2000,
    n_test: int = 250,
    per_problem: int = 4,
    balanced: bool = False,
    update: str = "all",
    fit: VFit | dict | None = None,
    controls: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> VProbeResult:
    """V-probe ``probe`` at ``layer`` (default the last; a list, or ``"all"`` for the per-layer depth sweep).

    Paper defaults (Part 2.1 §4.1, App. E): queries drawn uniformly from all parameters (``balanced=True`` is the
    label-balanced option), the rank-``rank`` update on the input embedding of every token (``update="appended"``:
    appended tokens only). ``n_train`` problems x ``per_problem`` queries train the probe (a fifth of them is the
    validation split that stops the fit, :class:`plm_interp.probes.VFit`), ``n_test`` problems from another seed
    score it: held-out n = ``n_test * per_problem`` (1,000: a 95% interval of about +-2.5 points at 80%). The same
    probe on a random-init model of the same architecture is the control (Fig. 7); ``.headlines()`` puts the figure
    beside it, the majority guess, n and a 95% Wilson interval, and names a fit that fell below the majority guess.
    """
    if probe not in PROBES:
        raise ValueError(f"field 'probe' = {probe!r}: must be one of {PROBES}")
    if update not in UPDATES:
        raise ValueError(f"field 'update' = {update!r}: must be one of {UPDATES}")
    fit = coerce_spec(VFit, fit, "fit")
    task = igsm_task(model, task)
    layers = resolve_layers(model, layer)
    check_positive(rank=rank, n_train=n_train, n_test=n_test, per_problem=per_problem)
    train = probe_examples(task, [x.problem for x in task.sample(n_train, seed=seed).samples], probe, per_problem,
                           seed, balanced)
    test = probe_examples(task, [x.problem for x in task.sample(n_test, seed=seed + 1).samples], probe, per_problem,
                          seed + 1, balanced)
    check_fits(model, train)
    check_fits(model, test)
    records, control_fit = [], None
    with torch_threads() as cores:
        for name, subject in control_subjects(model, controls, seed).items():
            def fitted(name=name, subject=subject):
                out = []
                for l in layers:
                    vp = fit_v_probe(subject, train, l, n_classes_of(task, probe), rank, fit, seed=seed, update=update,
                                     progress=progress, desc=f"v_probe {probe} {name} L{l}")
                    out.append({"model": name, "layer": l,
                                **score(vp.predict(subject, test), test.labels, train.labels), **vp.fit_info})
                return out

            # the control does not depend on the trained weights: fitted once, then read back
            inputs = {"train": train, "test": test, "layers": layers, "rank": rank, "update": update,
                      "n_classes": n_classes_of(task, probe), "fit": fit.as_dict(), "seed": seed}
            found, how = subject_records("v_probe", name, subject, inputs, fitted)
            records, control_fit = records + found, how or control_fit
    settings = {**fit.as_dict(), "rank": rank, "n_train": n_train, "n_test": n_test, "per_problem": per_problem,
                "balanced": balanced, "update": update, "seed": seed, "torch_threads": cores.threads,
                "control_fit": control_fit,
                "converged": all(r["converged"] for r in records)}
    return VProbeResult(probe=probe, layers=layers, records=records, settings=settings)
