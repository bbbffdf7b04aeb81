"""NT-ancestor and NT-end probes (Part 1, Results 4–5): is the parse tree linearly encoded in the hidden states?

For every NT level l and every probed layer, four probes are trained on the frozen model:

* ``nt_all`` — the multi-head linear probe (eq. 4.2, ``mode="full"``) predicting s_l(i) at every terminal;
* ``nt_end_diag`` / ``nt_end_tri`` — the diagonal / tridiagonal variants, trained and scored at NT-ends
  (b_l(i) = 1) only;
* ``end_bit`` — a diagonal probe predicting the NT-end bit b_l(i) itself.

The same probes run on a random-init model of the same architecture (the paper's control), and the majority
class of each target is reported beside them. Level names follow the paper: label level l is NT_{l+1} (root NT1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from analyses._task import resolve_task, subjects as control_subjects
from analyses.registry import register
from analyses.result import AnalysisResult
from plm_interp.probes import MultiHeadLinearProbe, ProbeFit, check_layer, fit_probes, predict

#: the paper's probe hyper-parameters (GPU scale) and the CPU defaults used when no GPU is present
PAPER_PROBE = dict(n_heads=16, width=1024, lr=3e-3, batch_size=60, steps=30_000)
CPU_PROBE = dict(n_heads=16, width=64, lr=3e-3, batch_size=60, steps=1_000)
PROBE_KINDS = ("nt_all", "nt_end_diag", "nt_end_tri", "end_bit")


@dataclass
class NTProbeResult(AnalysisResult):
    """NT-ancestor / NT-end probe accuracy and majority baseline per model, layer, level and probe kind."""
    grammar: str
    layers: list[int]
    levels: list[int]
    #: one record per (model, layer, level, probe): accuracy and the majority baseline on the same positions
    records: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, probe: str, level: int, layer: int | None = None, model: str = "trained") -> float:
        layer = self.layers[-1] if layer is None else layer
        for r in self.records:
            if (r["model"], r["layer"], r["level"], r["probe"]) == (model, layer, level, probe):
                return r["acc"]
        raise KeyError((model, layer, level, probe))

    def rows(self) -> list[dict[str, Any]]:
        out: dict[tuple, dict[str, Any]] = {}
        for r in self.records:
            key = (r["model"], r["layer"], r["probe"])
            row = out.setdefault(key, {"model": r["model"], "layer": r["layer"], "probe": r["probe"]})
            row[f"NT{r['level'] + 1}"] = round(100 * r["acc"], 1)
        for r in self.records:
            if r["model"] == "trained":
                key = ("majority", r["layer"], r["probe"])
                row = out.setdefault(key, {"model": "majority", "layer": r["layer"], "probe": r["probe"]})
                row[f"NT{r['level'] + 1}"] = round(100 * r["majority"], 1)
        return list(out.values())

    def plot(self):
        import matplotlib.pyplot as plt

        layer = self.layers[-1]
        fig, axes = plt.subplots(1, len(PROBE_KINDS), figsize=(4 * len(PROBE_KINDS), 3.2), sharey=True)
        names = [f"NT{l + 1}" for l in self.levels]
        x = torch.arange(len(names)).float()
        for ax, probe in zip(axes, PROBE_KINDS):
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
    n_train: int = 4096,
    n_test: int = 1024,
    n_heads: int | None = None,
    width: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    steps: int | None = None,
    controls: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> NTProbeResult:
    """Probe NT ancestors and NT-ends at ``layers`` (default the last; ``"all"`` for 0..n_layers).

    Probe hyper-parameters default to the paper's on a GPU (H=16, width 1024, AdamW lr 3e-3, batch 60, 30k
    steps) and to :data:`CPU_PROBE` (width 64, 1000 steps) on CPU; each can be overridden.
    """
    task = resolve_task(model, task, kind="cfg")
    defaults = PAPER_PROBE if model.W_E.is_cuda else CPU_PROBE
    hp = {k: (v if v is not None else defaults[k]) for k, v in
          dict(n_heads=n_heads, width=width, lr=lr, batch_size=batch_size, steps=steps).items()}
    layer_list = _layers(model, layers)
    depth = task.sample(1, seed=seed).s.shape[-1]
    level_list = list(range(1, depth)) if levels is None else list(levels)
    for l in level_list:
        if not 0 <= l < depth:
            raise ValueError(f"level {l} does not exist: the grammar has NT levels 0..{depth - 1} (0 = root)")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train = {n_train}, n_test = {n_test}: an empty dataset cannot be probed (need >= 1)")
    train, test = task.sample(n_train, seed=seed), task.sample(n_test, seed=seed + 1)
    if train.tokens.shape[1] > model.cfg.n_ctx or test.tokens.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"strings of up to {max(train.tokens.shape[1], test.tokens.shape[1])} tokens exceed the "
                         f"model's n_ctx = {model.cfg.n_ctx}")
    subjects = control_subjects(model, controls, seed)
    records = []
    for name, subject in subjects.items():
        for layer in layer_list:
            records += _probe_layer(subject, name, layer, train, test, level_list, hp, seed, progress)
    return NTProbeResult(grammar=task.grammar.name, layers=layer_list, levels=level_list, records=records,
                         settings={**hp, "n_train": n_train, "n_test": n_test, "seed": seed})


def _layers(model, layers) -> list[int]:
    if layers is None:
        return [model.cfg.n_layers]
    if layers == "all":
        return list(range(model.cfg.n_layers + 1))
    return [check_layer(model, l) for l in ([layers] if isinstance(layers, int) else layers)]


def _targets(samples, level: int) -> dict[str, torch.Tensor]:
    s, b, term = samples.s[..., level], samples.b[..., level], samples.terminal_mask
    ignore = torch.full_like(s, -1)
    return {"nt_all": torch.where(term, s, ignore),
            "nt_end_diag": torch.where(term & b, s, ignore),
            "nt_end_tri": torch.where(term & b, s, ignore),
            "end_bit": torch.where(term, b.long(), ignore)}


def _probe_layer(model, name, layer, train, test, levels, hp, seed, progress) -> list[dict[str, Any]]:
    n_ctx = max(train.tokens.shape[1], test.tokens.shape[1])
    valid_tr, valid_te = train.terminal_mask | _specials(train), test.terminal_mask | _specials(test)
    fits, test_labels = {}, {}
    for level in levels:
        tr, te = _targets(train, level), _targets(test, level)
        n_cls = int(max(train.s[..., level].max(), test.s[..., level].max())) + 1
        for kind in PROBE_KINDS:
            mode = {"nt_all": "full", "nt_end_tri": "tridiagonal"}.get(kind, "diagonal")
            classes = 2 if kind == "end_bit" else n_cls
            probe = MultiHeadLinearProbe(model.cfg.d_model, classes, n_ctx, hp["n_heads"], hp["width"], mode,
                                         seed=seed)
            fits[(level, kind)] = ProbeFit(probe, tr[kind])
            test_labels[(level, kind)] = te[kind]
    keyed = {f"{l}:{k}": f for (l, k), f in fits.items()}
    fit_probes(model, layer, train.tokens, valid_tr, keyed, steps=hp["steps"],
               lr=hp["lr"], batch_size=hp["batch_size"], seed=seed, progress=progress,
               desc=f"nt_probe {name} L{layer}")
    preds = predict(model, layer, test.tokens, valid_te, {k: f.probe for k, f in keyed.items()})
    out = []
    for (level, kind), labels in test_labels.items():
        sel = labels >= 0
        pred = preds[f"{level}:{kind}"]
        train_labels = fits[(level, kind)].labels
        majority = torch.bincount(train_labels[train_labels >= 0]).argmax()
        out.append({"model": name, "layer": layer, "level": level, "probe": kind,
                    "acc": float((pred[sel] == labels[sel]).float().mean()) if sel.any() else float("nan"),
                    "majority": float((labels[sel] == majority).float().mean()) if sel.any() else float("nan"),
                    "n": int(sel.sum())})
    return out


def _specials(samples) -> torch.Tensor:
    """BOS and EOS positions: visible to the probe's mixing (they carry context), never scored."""
    idx = torch.arange(samples.tokens.shape[1])[None]
    return (idx == 0) | (idx == samples.lengths[:, None] + 1)
