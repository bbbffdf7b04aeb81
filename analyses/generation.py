"""Generation quality (Part 1, Result 1–3): does the model generate the language, with the right diversity
and the right distribution?

* accuracy: the fraction of completions in the language, from no prefix (cut0: prompt ``BOS``) or from the
  first ``cut`` tokens of a fresh valid string (cut50), sampled with a KV cache until EOS;
* entropy: mean true surprisal −log2 P_grammar(x) (EOS included) of the model's *valid* generations beside
  that of fresh true samples — lower means the model collapses onto likely strings;
* KL: teacher-forced KL(truth ‖ model) over the outcomes {EOS} ∪ T, ε = 1e-5 smoothing, natural log, mean
  over positions of fresh valid strings (the model's mass on special tokens is renormalised away);
* diversity: distinct generated strings, distinct subtrees per NT level (from the parse), and the
  birthday-paradox estimate N² / (2 · colliding pairs) of the support the samples come from.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from analyses._task import resolve_task
from analyses.registry import register
from analyses.result import AnalysisResult, headline
from analyses.shared.checks import check_positive


@dataclass
class GenerationResult(AnalysisResult):
    """Generation accuracy per prefix cut, entropy of model vs true samples, and teacher-forced KL to the truth."""
    grammar: str
    accuracy: dict[str, float]  # "cut0", "cut50" -> fraction accepted
    n: int
    temperature: float
    top_k: int | None
    entropy_bits_model: float  # mean true surprisal of valid generations
    entropy_bits_truth: float  # the same on fresh true samples
    kl: float  # teacher-forced KL(truth || model), nats per position
    distinct_strings: float  # fraction of cut0 generations that are distinct
    birthday_support: float  # N^2 / (2 * colliding pairs); inf when nothing collides
    distinct_subtrees: dict[int, float] = field(default_factory=dict)  # level -> distinct / total subtrees
    examples: list[str] = field(default_factory=list)
    #: generations per cut (cut-k uses the fresh strings longer than k, at most n)
    n_by_cut: dict[str, int] = field(default_factory=dict)
    #: the random-init control (``controls=True``): its accuracy per cut and KL
    control: dict[str, Any] | None = None

    def headlines(self) -> list[dict[str, Any]]:
        """Accuracy per cut with its 95% Wilson interval, beside the random-init control when measured."""
        ctl = self.control or {}
        return [headline(f"generation accuracy {k}", v, self.n_by_cut.get(k, self.n),
                         ctl.get("accuracy", {}).get(k)) for k, v in self.accuracy.items()]

    def rows(self) -> list[dict[str, Any]]:
        rows = [{"metric": f"accuracy {k} %", "value": round(100 * v, 2)} for k, v in self.accuracy.items()]
        rows += [{"metric": "entropy bits (model's valid strings)", "value": self.entropy_bits_model},
                 {"metric": "entropy bits (true samples)", "value": self.entropy_bits_truth},
                 {"metric": "KL(truth || model) nats/pos", "value": self.kl},
                 {"metric": "distinct strings (cut0)", "value": self.distinct_strings},
                 {"metric": "birthday-paradox support estimate", "value": self.birthday_support}]
        rows += [{"metric": f"distinct subtrees NT{l + 1}", "value": v} for l, v in self.distinct_subtrees.items()]
        if self.control:
            rows += [{"metric": f"random-init accuracy {k} %", "value": round(100 * v, 2)}
                     for k, v in self.control["accuracy"].items()]
            rows.append({"metric": "random-init KL(truth || model) nats/pos", "value": self.control["kl"]})
        return rows

    def plot(self):
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
        a.bar(list(self.accuracy), [100 * v for v in self.accuracy.values()], color="tab:blue")
        a.set_ylim(0, 100)
        a.set_ylabel("% in the language")
        a.set_title(f"{self.grammar}, T={self.temperature}")
        b.bar(["model", "truth"], [self.entropy_bits_model, self.entropy_bits_truth], color=["tab:orange", "gray"])
        b.set_ylabel("mean surprisal (bits)")
        b.set_title(f"KL = {self.kl:.2e} nats/pos")
        fig.tight_layout()
        return fig


@register("generation")
def generation(
    model,
    task=None,
    n: int = 256,
    temperature: float = 1.0,
    top_k: int | None = None,
    cut: int = 50,
    kl_strings: int = 64,
    batch_size: int = 64,
    seed: int = 0,
    controls: bool = False,
    progress: bool = True,
) -> GenerationResult:
    """Generation accuracy (cut0 and cut``cut``), entropy, KL to the truth and diversity of ``model``.

    ``controls=True`` also measures accuracy and KL of a random-init model of the same shape (the control every
    headline figure is read against; off by default because it doubles the generation time)."""
    from tasks.cfg import BOS, EOS, entropy_bits, kl_to_truth, next_token_logprobs, parse

    task = resolve_task(model, task, kind="cfg")
    if isinstance(n, int) and isinstance(kl_strings, int) and (n < 1 or kl_strings < 1):
        raise ValueError(f"n = {n} and kl_strings = {kl_strings} must be >= 1")
    check_positive(n=n, kl_strings=kl_strings, cut=cut, batch_size=batch_size)
    # cut-k: prefixes of fresh valid strings longer than the cut; drawn first, so that a cut no string reaches is
    # refused before any generation (it used to drop the cut-k figure without a word)
    fresh = task.sample(4 * n, seed=seed + 1)
    long = (fresh.lengths > cut).nonzero()[:, 0][:n]
    if not len(long):
        raise ValueError(f"field 'cut' = {cut}: none of {4 * n} fresh strings of the grammar is longer than {cut} "
                         f"tokens (the longest has {int(fresh.lengths.max())}); use a cut below that")
    model.eval()
    bar = tqdm(total=3, desc="generation", disable=not progress, leave=False)
    # cut0
    cut0 = _generate(model, torch.full((n, 1), BOS), temperature, top_k, EOS, batch_size, seed)
    accepted0 = task.accepts(cut0).numpy()
    bar.update(1)
    accuracy = {"cut0": float(accepted0.mean())}
    n_by_cut = {"cut0": n}
    if len(long):
        cutk = _generate(model, fresh.tokens[long, : cut + 1], temperature, top_k, EOS, batch_size, seed + 2)
        accuracy[f"cut{cut}"] = float(task.accepts(cutk).numpy().mean())
        n_by_cut[f"cut{cut}"] = len(long)
    control = None
    if controls:
        from analyses._task import random_init_like

        rnd = random_init_like(model, seed=seed + 777)
        c_acc = {"cut0": float(task.accepts(_generate(rnd, torch.full((n, 1), BOS), temperature, top_k, EOS,
                                                                  batch_size, seed)).float().mean())}
        if len(long):
            c_acc[f"cut{cut}"] = float(task.accepts(_generate(rnd, fresh.tokens[long, : cut + 1], temperature, top_k,
                                                              EOS, batch_size, seed + 2)).float().mean())
        control = {"accuracy": c_acc, "kl": _kl(rnd, task, kl_strings, seed + 4, kl_to_truth)}
    bar.update(1)
    # entropy of valid generations vs true samples (grammar surprisal)
    strings = [x for x, ok in zip(task.decode_rows(cut0), accepted0) if ok]
    g = task.observed
    model_bits = _mean_surprisal(g, strings, next_token_logprobs, entropy_bits)
    truth = task.sample(min(n, 256), seed=seed + 3).labels.strings()
    truth_bits = _mean_surprisal(g, truth, next_token_logprobs, entropy_bits)
    # teacher-forced KL on fresh strings
    kl = _kl(model, task, kl_strings, seed + 4, kl_to_truth)
    bar.update(1)
    bar.close()
    keys = [tuple(r.tolist()) for r in task.decode_rows(cut0) if r is not None]
    pairs = sum(c * (c - 1) // 2 for c in Counter(keys).values())
    return GenerationResult(
        grammar=task.grammar.name, accuracy=accuracy, n=n, temperature=temperature, top_k=top_k,
        entropy_bits_model=model_bits, entropy_bits_truth=truth_bits, kl=kl,
        distinct_strings=len(set(keys)) / max(1, len(keys)),
        birthday_support=len(keys) ** 2 / (2 * pairs) if pairs else float("inf"),
        distinct_subtrees=_distinct_subtrees(parse(g, strings)) if strings else {},
        examples=[" ".join(map(str, s[:40].tolist())) for s in strings[:3]], n_by_cut=n_by_cut, control=control)


def _generate(model, prompts, temperature, top_k, eos, batch_size, seed) -> torch.Tensor:
    room = model.cfg.n_ctx - prompts.shape[1]
    outs = []
    for i, start in enumerate(range(0, prompts.shape[0], batch_size)):
        out = model.generate(prompts[start: start + batch_size], max_new_tokens=room, temperature=temperature,
                             top_k=top_k, eos_token_id=eos, seed=seed * 100_003 + i)
        outs.append(torch.nn.functional.pad(out.cpu(), (0, model.cfg.n_ctx - out.shape[1]), value=eos))
    return torch.cat(outs)


def _mean_surprisal(g, strings, next_token_logprobs, entropy_bits) -> float:
    if not strings:
        return float("nan")
    tables = next_token_logprobs(g, strings)
    return float(np.mean([entropy_bits(t, s) for t, s in zip(tables, strings)]))


@torch.no_grad()
def _kl(model, task, n, seed, kl_to_truth) -> float:
    from tasks.cfg.tokenizer import EOS, N_SPECIAL

    samples = task.sample(n, seed=seed)
    if samples.tokens.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"strings of {samples.tokens.shape[1]} tokens exceed the model's n_ctx = {model.cfg.n_ctx}")
    truth = task.true_next_token_logprobs(samples)  # [b, pos, vocab], NaN at EOS/PAD positions
    probs = torch.softmax(model(samples.tokens.to(model.W_E.device)).double().cpu(), dim=-1)
    outcomes = [*range(N_SPECIAL, task.d_vocab), EOS]
    rows = ~torch.isnan(truth[..., EOS])
    q = probs[..., outcomes][rows]
    q = q / q.sum(-1, keepdim=True)
    return kl_to_truth(q, truth[..., outcomes][rows])


def _distinct_subtrees(trees) -> dict[int, float]:
    """Per level: distinct subtree strings / all subtrees, over the parsed generations."""
    out: dict[int, float] = {}
    trees = [t for t in trees if t is not None]
    depth = trees[0].s.shape[1]
    for level in range(1, depth):
        seen, total = set(), 0
        for t in trees:
            ends = np.nonzero(t.b[:, level])[0]
            starts = np.concatenate([[0], ends[:-1] + 1])
            for a, z in zip(starts, ends):
                seen.add(tuple(t.tokens[a: z + 1].tolist()))
                total += 1
        out[level] = len(seen) / max(1, total)
    return out
