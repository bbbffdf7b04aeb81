"""NT-ancestor and NT-end probes (Part 1, Results 4–5): is the parse tree linearly encoded in the hidden states?

For every NT level l and every probed layer, four probes are fitted on the frozen model:

* ``nt_all`` — the multi-head linear probe (eq. 4.2, ``mode="full"``) predicting s_l(i) at every terminal;
* ``nt_end_diag`` / ``nt_end_tri`` — the diagonal / tridiagonal variants, trained and scored at NT-ends
  (b_l(i) = 1) only;
* ``end_bit`` — a diagonal probe predicting the NT-end bit b_l(i) itself.

``probes=`` fits a subset (e.g. the linear ``["nt_end_diag", "end_bit"]``, seconds, where the full probe takes
minutes on a CPU); the headlines, table and plot then show the kinds fitted.

The same probes run on a random-init model of the same architecture (the paper's control), and the majority
class of each target is reported beside them. Level names follow the paper: label level l is NT_{l+1} (root NT1).

One measure on every device. The probe family is the paper's ("H = 16 heads, position-embedding width 1024",
PAPERS.md Part 1, NT probes) on CPU and GPU alike, fitted by full-batch L-BFGS on activations computed once per model
for all layers. The fit stops when the figure it reports has converged (:mod:`plm_interp.probes.stopping`): a fifth
of the training strings is a validation split, the validation accuracy is checked every 10 iterations, and the fit
keeps the best-validation weights once it has run as long again as it took to make its last 0.1-point gain (at
least 3 checks). The paper's AdamW schedule (lr 3e-3,
batch 60, 30k steps, on fresh strings) is one way to approach the same figure; ``fit=MultiHeadFit(stop="loss")``
fits to convergence of the training loss instead. Every record carries its iterations, stop reason and validation
curve.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from analyses._task import resolve_task, subjects as control_subjects
from analyses.registry import register
from analyses.result import draw_headlines, headline
from analyses.shared.control_cache import subject_records
from analyses.shared.records import RecordsResult
from plm_interp.probes import MultiHeadFit, MultiHeadLinearProbe, cache_residuals, fit_probe, predict, resolve_layers
from plm_interp.probes.stopping import coerce_spec
from plm_interp.progress import Stages
from plm_interp.runtime import torch_threads

#: the paper's probe family (heads, position-embedding width), used on every device
PROBE = dict(n_heads=MultiHeadFit.n_heads, width=MultiHeadFit.width)
#: default training set: this many tokens' worth of strings, at most DEFAULT_STRINGS (the full probe's cost grows with
#: strings x length^2, so long-string grammars get fewer strings, each with more labelled positions)
DEFAULT_TOKENS, DEFAULT_STRINGS = 2**18, 4096
PROBE_KINDS = ("nt_all", "nt_end_diag", "nt_end_tri", "end_bit")
#: a probe this much more accurate on its training strings than held out is reported as data-limited
DATA_LIMITED_GAP = 0.02
MODES = {"nt_all": "full", "nt_end_diag": "diagonal", "nt_end_tri": "tridiagonal", "end_bit": "diagonal"}


@dataclass
class NTProbeResult(RecordsResult):
    """NT-ancestor / NT-end probe accuracy and majority baseline per model, layer, level and probe kind.

    ``records``: one per (model, layer, level, probe): held-out ``acc``, the ``majority`` guess on the same positions,
    ``n``, the fit's ``iterations``, ``converged``, ``stop_reason``, ``val_acc`` and ``train_acc``."""
    grammar: str = ""
    layers: list[int] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)

    def accuracy(self, probe: str, level: int, layer: int | None = None, model: str = "trained") -> float:
        layer = self.layers[-1] if layer is None else layer
        return self.record(model=model, layer=layer, level=level, probe=probe)["acc"]

    def headlines(self) -> list[dict[str, Any]]:
        """Per level at the last layer: the NT-end ancestor (diagonal probe at NT-ends, the paper's Result 5) and the
        all-position ancestor (the full probe, Result 4), each beside its random-init control and majority guess."""
        layer, out = self.layers[-1], []
        has_control = any(r["model"] == "random-init" for r in self.records)
        fitted = self.kinds()
        for probe, what in (("nt_end_diag", "NT-end ancestor"), ("nt_all", "ancestor, all positions")):
            if probe not in fitted:
                continue
            for level in self.levels:
                t = self.record(model="trained", layer=layer, level=level, probe=probe)
                if math.isnan(t["acc"]):
                    continue
                c = self.record(model="random-init", layer=layer, level=level, probe=probe) if has_control else None
                out.append(headline(f"NT{level + 1} {what}", t["acc"], t["n"], c and c["acc"], t["majority"]))
        return out

    def kinds(self) -> list[str]:
        """The probe kinds fitted (``nt_probe(probes=...)``), in PROBE_KINDS order."""
        present = {r["probe"] for r in self.records}
        return [k for k in PROBE_KINDS if k in present]

    def data_limited(self, gap: float = DATA_LIMITED_GAP) -> list[dict[str, Any]]:
        """The trained model's records whose training-string accuracy beats the held-out one by more than ``gap``:
        such a figure is set partly by how many strings the probe saw, not only by the model (``nt_probe`` doc)."""
        return [r for r in self.records if r["model"] == "trained" and r.get("train_acc", 0.0) - r["acc"] > gap]

    def budget_limited(self) -> list[dict[str, Any]]:
        """Records (any model) whose fit the ``max_iter`` budget ended before the stopping rule: their figure is the
        budget's point on the way to the optimum, not the optimum's (``nt_probe`` doc)."""
        return [r for r in self.records if not r["converged"]]

    def below_control(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """``(trained, random-init)`` record pairs (same layer, level, probe) where the trained model's figure does
        not beat its random-init control: such a figure shows no learned structure, whatever its size."""
        control = {(r["layer"], r["level"], r["probe"]): r for r in self.records if r["model"] == "random-init"}
        return [(r, control[k]) for r in self.records if r["model"] == "trained"
                and (k := (r["layer"], r["level"], r["probe"])) in control and not r["acc"] > control[k]["acc"]
                and not math.isnan(r["acc"]) and not math.isnan(control[k]["acc"])]  # NaN: nothing was scored

    def table(self, digits: int = 4) -> str:
        return "\n\n".join([super().table(digits), *self._notes()])

    def _notes(self) -> list[str]:
        notes = []
        weak = self.below_control()
        if weak:
            pairs = "; ".join(f"{r['probe']} NT{r['level'] + 1} layer {r['layer']}: {100 * r['acc']:.1f} vs "
                              f"{100 * c['acc']:.1f}" for r, c in weak)
            notes.append(f"not above the random-init control ({pairs}): these figures show no learned structure")
        stopped = self.budget_limited()
        if stopped:
            kinds = _kinds(stopped)
            cap = self.settings.get("max_iter", "the")
            notes.append(f"budget-limited ({kinds}): {len(stopped)} of {len(self.records)} fits reached max_iter = "
                         f"{cap} before the stopping rule; their figures are points on the way to the converged "
                         f"figure (pass fit={{'max_iter': ...}} larger; docs/analyses.md)")
        limited = self.data_limited()
        if limited:
            worst = max(limited, key=lambda r: r["train_acc"] - r["acc"])
            n = self.settings.get("n_train", "the")
            kinds = _kinds(limited)
            notes.append(f"data-limited ({kinds}): the probes fit their {n} training strings better than held-out "
                         f"ones (worst: {worst['probe']} NT{worst['level'] + 1}, layer {worst['layer']}, "
                         f"{100 * worst['train_acc']:.1f}% on them, {100 * worst['acc']:.1f}% held out); the paper's "
                         f"probe saw fresh strings at every step, so more strings (e.g. n_train = 4 x {n}) give a "
                         f"figure nearer the paper's (docs/analyses.md)")
        return notes

    def rows(self) -> list[dict[str, Any]]:
        out: dict[tuple, dict[str, Any]] = {}
        for r in self.records:
            key = (r["model"], r["layer"], r["probe"])
            row = out.setdefault(key, {"model": r["model"], "layer": r["layer"], "probe": r["probe"]})
            row[f"NT{r['level'] + 1}"] = round(100 * r["acc"], 1)
        for r in self.records:  # the training set's own accuracy: a large gap means the figure is data-limited
            if r["model"] == "trained" and "train_acc" in r:
                key = ("trained, train set", r["layer"], r["probe"])
                row = out.setdefault(key, {"model": "trained, train set", "layer": r["layer"], "probe": r["probe"]})
                row[f"NT{r['level'] + 1}"] = round(100 * r["train_acc"], 1)
        for r in self.records:
            if r["model"] == "trained":
                key = ("majority", r["layer"], r["probe"])
                row = out.setdefault(key, {"model": "majority", "layer": r["layer"], "probe": r["probe"]})
                row[f"NT{r['level'] + 1}"] = round(100 * r["majority"], 1)
        return list(out.values())

    def plot(self):
        import matplotlib.pyplot as plt

        layer = self.layers[-1]
        kinds = self.kinds()
        fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.2), sharey=True, squeeze=False)
        axes = axes[0]
        names = [f"NT{l + 1}" for l in self.levels]
        x = torch.arange(len(names)).float()
        for ax, probe in zip(axes, kinds):
            for i, model in enumerate(("trained", "random-init")):
                vals = [100 * self.accuracy(probe, l, layer, model) for l in self.levels
                        if any(r["model"] == model for r in self.records)]
                if vals:
                    ax.bar(x + 0.27 * (i - 1), vals, width=0.27, label=model)
            maj = [100 * next(r["majority"] for r in self.records if r["probe"] == probe and r["level"] == l
                              and r["layer"] == layer and r["model"] == "trained") for l in self.levels]
            ax.bar(x + 0.27, maj, width=0.27, label="majority", color="lightgray")
            ax.set_xticks(x, names)
            ax.set_title(probe)
        axes[0].set_ylabel(f"accuracy % (layer {layer})")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"NT probes on {self.grammar}")
        fig.tight_layout()
        return fig


@register("nt_probe")
def nt_probe(
    model,
    task=None,
    layers: int | list[int] | str | None = None,
    levels: list[int] | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    fit: MultiHeadFit | dict | None = None,
    probes: Sequence[str] | None = None,
    controls: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> NTProbeResult:
    """Probe NT ancestors and NT-ends at ``layers`` (default the last; ``"all"`` for 0..n_layers).

    ``n_train`` strings (default: 2^18 tokens' worth, at most 4,096 strings) train every probe, a fifth of them as
    the validation split that stops each fit; ``n_test`` (default half as many) score it. ``fit``
    (:class:`plm_interp.probes.MultiHeadFit`, or a dict of its fields) sets the probe family and the stopping rule;
    the default is the paper's family stopped by the validation figure (module doc). ``probes`` (default all of
    :data:`PROBE_KINDS`) names the kinds to fit. Each record's ``train_acc``
    beside ``acc`` shows whether the figure is limited by the number of strings (the table's "data-limited" line).
    """
    fit = coerce_spec(MultiHeadFit, fit, "fit")
    kinds = list(PROBE_KINDS) if probes is None else probes
    if isinstance(kinds, str) or not isinstance(kinds, (list, tuple)) or not kinds or \
            any(k not in PROBE_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"probes = {probes!r}: give None (all) or a non-empty list of distinct kinds from "
                         f"{list(PROBE_KINDS)}")
    kinds = [k for k in PROBE_KINDS if k in kinds]
    task = resolve_task(model, task, kind="cfg")
    layer_list = resolve_layers(model, layers)
    depth = task.sample(1, seed=seed).s.shape[-1]
    if levels is not None and (not isinstance(levels, (list, tuple)) or not levels):
        raise ValueError(f"levels = {levels!r}: give None (every level below the root) or a non-empty list")
    level_list = list(range(1, depth)) if levels is None else list(levels)
    for l in level_list:
        if isinstance(l, bool) or not isinstance(l, int) or not 0 <= l < depth:
            raise ValueError(f"level {l!r} does not exist: the grammar has NT levels 0..{depth - 1} (0 = root)")
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} = {v!r}: an empty dataset cannot be probed (need an int >= 1)")
    if n_train is None:
        lengths = task.sample(64, seed=seed).lengths.float() + 2
        n_train = int(min(DEFAULT_STRINGS, max(64, round(DEFAULT_TOKENS / float(lengths.mean())))))
    n_test = max(1, n_train // 2) if n_test is None else n_test
    if fit.stop == "figure" and n_train < 2:
        raise ValueError(f"n_train = {n_train}: the figure rule needs at least 2 strings (training and validation)")
    train, test = task.sample(n_train, seed=seed), task.sample(n_test, seed=seed + 1)
    if train.tokens.shape[1] > model.cfg.n_ctx or test.tokens.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"strings of up to {max(train.tokens.shape[1], test.tokens.shape[1])} tokens exceed the "
                         f"model's n_ctx = {model.cfg.n_ctx}")
    with torch_threads() as cores:
        subjects = control_subjects(model, controls, seed)
        n_fits = len(layer_list) * len(level_list) * len(kinds)
        stages = {"activations": 0.2 * n_fits * len(subjects), "trained probes": n_fits}
        if len(subjects) > 1:
            stages["control"] = n_fits
        records, control_fit = [], None
        with Stages("nt_probe", stages, progress) as bar:
            for name, subject in subjects.items():
                def fitted(name=name, subject=subject):
                    bar.stage("activations")
                    acts = {split: cache_residuals(subject, data.tokens, layer_list, on_batch=None)
                            for split, data in (("train", train), ("test", test))}
                    bar.advance(0.2 * n_fits)
                    bar.stage("trained probes" if name == "trained" else "control")
                    return [r for layer in layer_list for r in _probe_layer(
                        subject, name, acts["train"][layer], acts["test"][layer], layer, train, test, level_list, fit,
                        seed, bar, kinds)]

                # the control depends on its own weights, the data and the fit, not on the trained model: kept
                inputs = {"data": [_data_key(train), _data_key(test)], "layers": layer_list, "levels": level_list,
                          "fit": fit.as_dict(), "seed": seed, "probes": kinds}
                found, how = subject_records("nt_probe", name, subject, inputs, fitted)
                records, control_fit = records + found, how or control_fit
                if how == "cached":
                    bar.advance(1.2 * n_fits)
    return NTProbeResult(grammar=task.grammar.name, layers=layer_list, levels=level_list, records=records,
                         settings={**fit.as_dict(), "probes": kinds, "n_train": n_train, "n_test": n_test,
                                   "seed": seed, "torch_threads": cores.threads, "control_fit": control_fit,
                                   "converged": all(r["converged"] for r in records)})


def _data_key(samples) -> list[torch.Tensor]:
    """The probe data's tensors a control's records depend on (strings and their labels)."""
    return [samples.tokens, samples.lengths, samples.terminal_mask, samples.s, samples.b]


def _kinds(records) -> str:
    """"nt_all NT2, nt_end_tri NT3, ...": the probe kinds and levels a table note is about, once each."""
    return ", ".join(sorted({f"{r['probe']} NT{r['level'] + 1}" for r in records}))


def _targets(samples, level: int) -> dict[str, torch.Tensor]:
    s, b, term = samples.s[..., level], samples.b[..., level], samples.terminal_mask
    ignore = torch.full_like(s, -1)
    return {"nt_all": torch.where(term, s, ignore),
            "nt_end_diag": torch.where(term & b, s, ignore),
            "nt_end_tri": torch.where(term & b, s, ignore),
            "end_bit": torch.where(term, b.long(), ignore)}


def _probe_layer(model, name, acts_tr, acts_te, layer, train, test, levels, fit: MultiHeadFit, seed,
                 bar, kinds=PROBE_KINDS) -> list[dict[str, Any]]:
    n_ctx = max(train.tokens.shape[1], test.tokens.shape[1])
    valid_tr, valid_te = train.terminal_mask | _specials(train), test.terminal_mask | _specials(test)
    # the rows the probe is fitted on (under the figure rule the last val_fraction are its validation split)
    n_fit = acts_tr.shape[0] - (int(round(fit.val_fraction * acts_tr.shape[0])) if fit.stop == "figure" else 0)
    out = []
    for level in levels:
        tr, te = _targets(train, level), _targets(test, level)
        n_cls = int(max(train.s[..., level].max(), test.s[..., level].max())) + 1
        for kind in kinds:
            probe = MultiHeadLinearProbe(model.cfg.d_model, 2 if kind == "end_bit" else n_cls, n_ctx, fit.n_heads,
                                         fit.width, MODES[kind], seed=seed)
            report = fit_probe(probe, acts_tr, valid_tr, tr[kind], **fit.fit_kwargs())
            bar.advance(1)
            labels = te[kind]
            sel = labels >= 0
            pred = predict(probe, acts_te, valid_te)
            fit_labels = tr[kind][:n_fit]
            fit_sel = fit_labels >= 0
            train_pred = predict(probe, acts_tr[:n_fit], valid_tr[:n_fit])
            train_acc = float((train_pred[fit_sel] == fit_labels[fit_sel]).float().mean()) if fit_sel.any() else math.nan
            majority = torch.bincount(tr[kind][tr[kind] >= 0]).argmax()
            figure = report.figure or {}
            out.append({"model": name, "layer": layer, "level": level, "probe": kind,
                        "acc": float((pred[sel] == labels[sel]).float().mean()) if sel.any() else float("nan"),
                        "majority": float((labels[sel] == majority).float().mean()) if sel.any() else float("nan"),
                        "n": int(sel.sum()), "converged": report.converged, "iterations": report.iterations,
                        "train_loss": round(report.loss, 6), "train_acc": train_acc,
                        "val_acc": figure.get("best_val_acc"), "stop_reason": figure.get("reason", "loss rule"),
                        "val_curve": figure.get("val_curve")})
    return out


def _specials(samples) -> torch.Tensor:
    """BOS and EOS positions: visible to the probe's mixing (they carry context), never scored."""
    idx = torch.arange(samples.tokens.shape[1])[None]
    return (idx == 0) | (idx == samples.lengths[:, None] + 1)
