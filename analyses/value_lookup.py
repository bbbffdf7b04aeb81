"""Where does the model read the number it writes? A diagnostic of the iGSM value lookup.

A solution step ``Define X as a; so a = N.`` for a parameter the problem states directly (``The number of each
X equals N.``) can only be right if the model finds *that* sentence among the problem's other ``equals N``
sentences: a content lookup keyed on the name X. This analysis runs the model teacher-forced on true solutions
and, at every such ``=`` (the position that predicts N), measures per layer and head the attention to the true
N and to the other stated numbers. Sites are found in the token text, independently of the generator's
bookkeeping: the name between ``Define`` and ``as`` is matched against the names between ``each`` and
``equals`` in the problem.

Why: a model can reach a fair loss by copying *some* stated number (its attention spread over all of them) long
before it learns the lookup; then accuracy sits near ``1 / #numbers``. ``selectivity`` (the share of a head's
number-attention that goes to the true one) against ``chance`` (the mean of ``1 / #numbers``) tells the two apart;
``value_acc`` is how often the argmax at ``=`` is the true N, ``distractor_rate`` how often it is another stated
number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float

from analyses.shared.igsm_inputs import check_positive, igsm_task
from analyses.registry import register
from analyses.result import AnalysisResult


@dataclass
class ValueLookupResult(AnalysisResult):
    """Attention from each value-predicting ``=`` to the true stated number and to the other stated numbers."""
    #: mean attention mass to the true number / to the other stated numbers, per layer and head
    to_true: Float[torch.Tensor, "layer head"]
    to_other: Float[torch.Tensor, "layer head"]
    n_sites: int
    chance: float  # mean of 1 / (number of stated numbers) over the sites
    value_acc: float  # argmax at "=" is the true number
    distractor_rate: float  # argmax at "=" is another stated number
    settings: dict[str, Any] = field(default_factory=dict)

    def selectivity(self) -> Float[torch.Tensor, "layer head"]:
        """Share of each head's attention to stated numbers that goes to the true one (chance: :attr:`chance`)."""
        return self.to_true / (self.to_true + self.to_other).clamp_min(1e-12)

    def rows(self) -> list[dict[str, Any]]:
        """One row per head: attention to the true and the other numbers, and the selectivity beside chance."""
        sel = self.selectivity()
        return [{"layer": l, "head": h, "to true": float(self.to_true[l, h]), "to other numbers":
                 float(self.to_other[l, h]), "selectivity": float(sel[l, h]), "chance": self.chance}
                for l in range(self.to_true.shape[0]) for h in range(self.to_true.shape[1])]

    def plot(self):
        """Heatmaps of the attention to the true number and of the selectivity (chance marked in the title)."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for ax, data, title in ((axes[0], self.to_true, "attention to the true number"),
                                (axes[1], self.selectivity(), f"selectivity (chance {self.chance:.2f})")):
            im = ax.imshow(data.numpy(), vmin=0, vmax=1, cmap="viridis")
            ax.set(title=title, xlabel="head", ylabel="layer")
            fig.colorbar(im, ax=ax)
        fig.suptitle(f"value lookup at '=' ({self.n_sites} sites): value acc {self.value_acc:.2f}, "
                     f"distractor {self.distractor_rate:.2f}")
        fig.tight_layout()
        return fig


def lookup_sites(words: list[str]) -> list[tuple[int, int, list[int]]]:
    """``(eq, true, numbers)`` per direct-lookup step of one tokenised problem + solution: the position of the
    ``=`` that predicts the value, of the true stated number, and of every ``equals N`` number in the problem."""
    sol = words.index("<SOL>")
    stated = {}  # name (as a word tuple) -> position of its number
    numbers = []
    for i in range(1, sol):
        if words[i - 1] == "equals" and words[i].isdigit():
            numbers.append(i)
            j = i - 2
            while j >= 0 and words[j] != "each":
                j -= 1
            stated[tuple(words[j + 1: i - 1])] = i
    sites = []
    for i in range(sol, len(words)):
        if words[i] != "Define":
            continue
        k = words.index("as", i)
        name = tuple(words[i + 1: k])
        # "Define X as a ; so a = N ." is a direct statement when X's sentence is "X equals N"
        if name in stated and words[k + 2: k + 6] == [";", "so", words[k + 1], "="] \
                and words[k + 6: k + 8] == [words[stated[name]], "."]:
            sites.append((k + 5, stated[name], numbers))
    return sites


@register("value_lookup")
@torch.no_grad()
def value_lookup(model, task=None, n: int = 64, op: int = 1, seed: int = 0, progress: bool = True
                 ) -> ValueLookupResult:
    """Attention from each value-predicting ``=`` to the true stated number vs the others, on ``n`` problems
    with ``op`` operations (``op=1``: every solution is one lookup)."""
    from tqdm.auto import tqdm

    task = igsm_task(model, task)
    check_positive(n=n, op=op)
    batch = task.sample(n, seed=seed, op=op)
    tok = task.tokenizer
    L, H = model.cfg.n_layers, model.cfg.n_heads
    to_true, to_other = torch.zeros(L, H), torch.zeros(L, H)
    n_sites, chance, hit, distractor = 0, 0.0, 0, 0
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(L)]
    for s in tqdm(batch.samples, desc="value_lookup", disable=not progress, leave=False):
        ids = list(s.ids)
        if len(ids) > model.cfg.n_ctx:
            raise ValueError(f"a problem of {len(ids)} tokens does not fit the model's n_ctx = {model.cfg.n_ctx}")
        words = [tok.decode([i]) for i in ids]
        sites = lookup_sites(words)
        if not sites:
            continue
        x = torch.tensor([ids], device=model.W_E.device)
        logits, cache = model.run_with_cache(x, names_filter=lambda name: name in names)
        for eq, true, numbers in sites:
            others = [p for p in numbers if p != true]
            for l in range(L):
                pat = cache[names[l]][0, :, eq].float().cpu()  # [head, key]
                to_true[l] += pat[:, true]
                to_other[l] += pat[:, others].sum(-1)
            pred = int(logits[0, eq].argmax())
            hit += pred == ids[true]
            distractor += pred != ids[true] and pred in {ids[p] for p in others}
            chance += 1 / len(numbers)
            n_sites += 1
    if n_sites == 0:
        raise ValueError(f"no direct-lookup step in {n} problems with op = {op}; use op=1 or more problems")
    return ValueLookupResult(to_true / n_sites, to_other / n_sites, n_sites, chance / n_sites, hit / n_sites,
                             distractor / n_sites, settings={"n": n, "op": op, "seed": seed})
