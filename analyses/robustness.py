"""Robustness to corrupted prompts and the "mode switch" (Part 1, Results 12–13).

What is measured, precisely. For each corruption rate γ and temperature τ:

1. ``n`` fresh valid strings with more than ``prefix_len`` terminals are drawn (:func:`long_strings`).
2. Their first ``prefix_len`` terminals are corrupted with ``flip_tokens(γ)`` (each token independently, with
   probability γ, replaced by a uniformly chosen *different* terminal). The prompt is ``BOS + corrupted prefix``.
3. The model completes the prompt at temperature τ until EOS (or until the context is full).
4. **accuracy** = fraction of completions c for which ``BOS + clean prefix + c`` (c ending in EOS) is in the
   language — the *original, uncorrupted* prefix is put back before parsing. A model that "reads through" the
   corruption and continues the string it should have seen scores 1; a completion that never emits EOS scores 0.
   At γ = 0 this is exactly the paper's cut-``prefix_len`` generation accuracy.
5. **corrupted_output** = 1 − accuracy: how often the continuation is itself corrupted, i.e. not a valid
   continuation of the clean prefix. **mode_switch** = corrupted_output(γ, τ) − corrupted_output(0, τ): the
   extra corruption the model puts into its own output *because* the prompt was corrupted (NaN/None when
   γ = 0 is not among ``rates``). The paper's reading: a model trained with a fraction ``corrupt_frac`` of
   corrupted strings (see ``train_corrupt_frac`` / ``train_flip_rate``, read from the task spec) learns that
   corrupted strings stay corrupted, so at τ = 1 it continues corrupted prompts in the corrupted mode
   (corrupted_output near 1, so mode_switch near the clean accuracy), while at τ = 0.1–0.2 the more probable clean mode wins (accuracy
   ≈ 80% at γ = 0.15 vs ≈ 30% for a clean-trained model).

Randomness: strings from ``task.sample`` streams of ``seed``; the flips of rate γ from
``default_rng([seed, 3, round(γ·1e6)])``; generation in every cell from ``seed + 1`` (common random numbers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from jaxtyping import Int

from analyses._task import resolve_task
from analyses.registry import register
from analyses.result import AnalysisResult
from tasks.cfg.corruption import flip_tokens
from tasks.cfg.tokenizer import BOS, EOS, N_SPECIAL


@dataclass
class RobustnessResult(AnalysisResult):
    """Accuracy, corrupted-mode output and mode switches per prefix corruption rate and temperature."""
    grammar: str
    prefix_len: int
    train_corrupt_frac: float
    train_flip_rate: float
    #: one record per (rate, temperature): accuracy, corrupted_output, mode_switch, eos_rate, flipped, n
    records: list[dict[str, Any]] = field(default_factory=list)
    #: per (rate, temperature) key ``"rate@temperature"``: whether each of the n completions was valid
    per_sample: dict[str, list[bool]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, rate: float, temperature: float) -> float:
        for r in self.records:
            if math.isclose(r["rate"], rate) and math.isclose(r["temperature"], temperature):
                return r["accuracy"]
        raise KeyError((rate, temperature))

    def rows(self) -> list[dict[str, Any]]:
        return [{**r, "train_corrupt_frac": self.train_corrupt_frac} for r in self.records]

    def plot(self):
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        temps = sorted({r["temperature"] for r in self.records})
        for t in temps:
            rs = sorted((r for r in self.records if r["temperature"] == t), key=lambda r: r["rate"])
            axes[0].plot([r["rate"] for r in rs], [100 * r["accuracy"] for r in rs], marker="o", label=f"τ={t}")
            ms = [r for r in rs if r["mode_switch"] is not None]
            axes[1].plot([r["rate"] for r in ms], [r["mode_switch"] for r in ms], marker="o", label=f"τ={t}")
        axes[0].set_xlabel("prompt corruption rate γ")
        axes[0].set_ylabel(f"accuracy % (clean cut-{self.prefix_len} prefix + completion)")
        axes[1].set_xlabel("prompt corruption rate γ")
        axes[1].set_ylabel("mode switch: corrupted_output(γ) − corrupted_output(0)")
        axes[1].axhline(self.train_corrupt_frac, color="gray", ls="--", lw=1, label="train corrupt_frac")
        for ax in axes:
            ax.legend(fontsize=7)
        fig.suptitle(f"robustness on {self.grammar}")
        fig.tight_layout()
        return fig


def long_strings(task, n: int, prefix_len: int, seed: int = 0, max_draws: int = 8) -> list[np.ndarray]:
    """``n`` fresh strings (terminal ids) with more than ``prefix_len`` terminals, so every prompt leaves
    something to complete. Draw k uses ``task.sample(2n, seed + 100_003·k)``; refuses if too few are long."""
    out: list[np.ndarray] = []
    for k in range(max_draws):
        for x in task.sample(2 * n, seed=seed + 100_003 * k).strings():
            if len(x) > prefix_len:
                out.append(np.asarray(x, dtype=np.int64))
        if len(out) >= n:
            return out[:n]
    lo, hi = task.observed.length_range()
    raise ValueError(f"prefix_len = {prefix_len}: only {len(out)} of {2 * n * max_draws} sampled strings are longer "
                     f"(the grammar's strings have {lo}..{hi} terminals); lower prefix_len")


def valid_completions(task, clean_prefixes: Sequence[np.ndarray],
                      completions: Sequence[Int[torch.Tensor, " _new"]]) -> list[bool]:  # one length each
    """Whether ``BOS + clean prefix + completion`` is a string of the language (completion must end in EOS)."""
    rows = [[BOS] + (p + N_SPECIAL).tolist() + c.tolist() for p, c in zip(clean_prefixes, completions)]
    return task.accepts(rows).tolist()  # a row without EOS decodes to None: not accepted


@register("robustness")
def robustness(
    model,
    task=None,
    rates: Sequence[float] = (0.0, 0.1, 0.15, 0.2),
    temperatures: Sequence[float] = (0.1, 0.2, 1.0),
    n: int = 256,
    prefix_len: int = 50,
    seed: int = 0,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    progress: bool = True,
) -> RobustnessResult:
    """Completion accuracy from prompts with a fraction γ of flipped tokens, per rate and temperature, and the
    mode-switch statistic (see the module docstring for the exact definitions).

    Args:
        rates: corruption rates γ in [0, 1] applied to the first ``prefix_len`` terminals.
        temperatures: sampling temperatures (> 0; 0 would be greedy).
        n: number of prompts per cell (the same strings in every cell).
        max_new_tokens: default fills the context (``n_ctx − 1 − prefix_len``).
    """
    task = resolve_task(model, task, kind="cfg")
    rates, temperatures = [float(r) for r in rates], [float(t) for t in temperatures]
    if not rates or any(not 0.0 <= r <= 1.0 for r in rates):
        raise ValueError(f"rates = {rates} must be a non-empty list of corruption rates in [0, 1]")
    if not temperatures or any(not t >= 0 for t in temperatures):
        raise ValueError(f"temperatures = {temperatures} must be a non-empty list of numbers >= 0")
    for name, v in (("n", n), ("prefix_len", prefix_len), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} = {v!r} must be an int >= 1")
    if prefix_len + 2 > model.cfg.n_ctx:
        raise ValueError(f"prefix_len = {prefix_len} leaves no room in the model's n_ctx = {model.cfg.n_ctx}")
    if model.cfg.attention_dir != "causal":
        raise ValueError("robustness needs a causal (generating) model; this one has attention_dir='bidirectional'")
    strings = long_strings(task, n, prefix_len, seed)
    clean = [x[:prefix_len] for x in strings]

    cells = [(r, t) for r in rates for t in temperatures]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells) * math.ceil(n / batch_size), desc="robustness", unit="batch")
    records, per_sample = [], {}
    for rate in rates:
        flipped = flip_tokens(task.observed, clean, rate, seed=np.random.default_rng([seed, 3, round(rate * 1e6)]))
        prompts = torch.tensor([[BOS] + (x + N_SPECIAL).tolist() for x in flipped.strings()], dtype=torch.long)
        for temp in temperatures:
            ok = _complete(model, task, prompts, clean, temp, seed + 1, batch_size, max_new_tokens, bar)
            per_sample[f"{rate}@{temp}"] = ok[0]
            records.append({"rate": rate, "temperature": temp, "accuracy": float(np.mean(ok[0])),
                            "corrupted_output": 1.0 - float(np.mean(ok[0])), "mode_switch": None,
                            "eos_rate": float(np.mean(ok[1])), "flipped": float(flipped.changed.mean()), "n": n})
    if bar is not None:
        bar.close()
    for r in records:
        base = [b for b in records if b["rate"] == 0.0 and b["temperature"] == r["temperature"]]
        if base:
            r["mode_switch"] = r["corrupted_output"] - base[0]["corrupted_output"]
    return RobustnessResult(grammar=task.grammar.name, prefix_len=prefix_len,
                            train_corrupt_frac=task.corrupt_frac, train_flip_rate=task.flip_rate,
                            records=records, per_sample=per_sample,
                            settings={"n": n, "seed": seed, "rates": rates, "temperatures": temperatures,
                                      "batch_size": batch_size, "max_new_tokens": max_new_tokens})


def _complete(model, task, prompts, clean, temperature, gen_seed, batch_size, max_new_tokens, bar):
    """Generate from ``prompts`` in batches (one generator, so the result depends on batch_size) and score."""
    device = model.W_E.device
    generator = torch.Generator(device=device).manual_seed(gen_seed)
    ok, has_eos = [], []
    for s in range(0, len(prompts), batch_size):
        batch = prompts[s: s + batch_size].to(device)
        with torch.no_grad():
            out = model.generate(batch, max_new_tokens=max_new_tokens, temperature=temperature,
                                 eos_token_id=EOS, generator=generator)
        new = out[:, batch.shape[1]:].cpu()
        completions = [_cut(row) for row in new]
        has_eos += [bool((row == EOS).any()) for row in new]
        ok += valid_completions(task, clean[s: s + batch_size], completions)
        if bar is not None:
            bar.update(1)
    return ok, has_eos


def _cut(row: torch.Tensor) -> torch.Tensor:
    hits = (row == EOS).nonzero()
    return row if hits.numel() == 0 else row[: int(hits[0]) + 1]
