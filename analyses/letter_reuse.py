"""Does the model avoid the letters a solution has already defined? A diagnostic of iGSM naming.

Every step and temporary gets a fresh letter (``Define X as a;``, ``R = a + b;``). With the paper's random
letters the right next letter is uniform over the unused ones, so the loss rewards avoiding the used ones by
only about ``log(pool / (pool - used))`` nats per step; a small model can reach a good loss without ever learning
it, and then greedy decoding writes its favourite letter again at the second step (the verifier's
``letter_reused``). This analysis runs the model teacher-forced on true solutions and, at every ``as`` that
predicts a step's letter after the first, measures the probability on the letters already defined beside what a
model that ignores them would put there (its letter probability spread evenly over the pool), and how often the
argmax is a used letter. Sites and used letters are read from the token text.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from analyses.registry import register
from analyses.shared.igsm_inputs import check_positive, igsm_task
from analyses.shared.records import RecordsResult
from tasks.igsm.solution import LETTERS


@dataclass
class LetterReuseResult(RecordsResult):
    """Probability on already-defined letters at each step's letter, by how many letters were defined before.

    ``records``: one per number of letters defined before the slot, plus ``used = "all"``: n slots, mass on the
    used letters, the same if the model ignored which letters are used ("blind"), argmax on a used letter.
    """

    def record(self, used: int | str = "all", **match: Any) -> dict[str, Any]:
        """The record for slots with ``used`` letters defined before (``"all"``: every slot)."""
        return super().record(used=used, **match)

    def plot(self):
        """Mass on used letters vs the blind expectation, per number of letters already defined."""
        import matplotlib.pyplot as plt

        rs = [r for r in self.records if r["used"] != "all"]
        fig, ax = plt.subplots(figsize=(5, 3.2))
        xs = [r["used"] for r in rs]
        ax.plot(xs, [r["used_mass"] for r in rs], "o-", label="model")
        ax.plot(xs, [r["blind_mass"] for r in rs], "s--", label="ignoring which are used")
        ax.set_xlabel("letters defined before the step")
        ax.set_ylabel("probability on used letters")
        ax.set_title("letter reuse (teacher-forced)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig


def letter_sites(words: list[str]) -> list[tuple[int, list[str]]]:
    """``(position of "as", letters defined before it)`` for every step after the first in the solution."""
    letters = set(LETTERS)
    sol = words.index("<SOL>")
    out, used = [], []
    for t in range(sol + 1, len(words) - 1):
        nxt = words[t + 1]
        if nxt not in letters:
            continue
        if words[t] == "as":
            if used:
                out.append((t, list(used)))
            used.append(nxt)
        elif words[t] == ";" and t + 2 < len(words) and words[t + 2] == "=":  # a temporary: "; R = a + b"
            used.append(nxt)
    return out


@register("letter_reuse")
@torch.no_grad()
def letter_reuse(model, task=None, n: int = 64, seed: int = 0, progress: bool = True) -> LetterReuseResult:
    """Teacher-forced on ``n`` in-distribution problems: probability on already-defined letters at each step's
    letter, beside the blind expectation (the model's letter probability x used / pool)."""
    from tqdm.auto import tqdm

    task = igsm_task(model, task)
    check_positive(n=n)
    tok = task.tokenizer
    pool = LETTERS[: task.config.letters]
    pool_ids = torch.tensor([tok.encode(c)[0] for c in pool])
    sums: dict[Any, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0])
    for s in tqdm(task.sample(n, seed=seed, split="test").samples, desc="letter_reuse", disable=not progress,
                  leave=False):
        ids = list(s.ids)
        if len(ids) > model.cfg.n_ctx:
            raise ValueError(f"a problem of {len(ids)} tokens does not fit the model's n_ctx = {model.cfg.n_ctx}")
        sites = letter_sites([tok.decode([i]) for i in ids])
        if not sites:
            continue
        probs = model(torch.tensor([ids], device=model.W_E.device))[0].float().softmax(-1).cpu()
        for t, used in sites:
            used_ids = torch.tensor([tok.encode(c)[0] for c in used])
            used_mass = float(probs[t, used_ids].sum())
            blind = float(probs[t, pool_ids].sum()) * len(used) / len(pool)
            argmax_used = int(probs[t].argmax()) in set(used_ids.tolist())
            for key in (len(used), "all"):
                acc = sums[key]
                acc[0] += 1
                acc[1] += used_mass
                acc[2] += blind
                acc[3] += argmax_used
    if not sums:
        raise ValueError(f"no solution with two or more letters in {n} problems; use more problems")
    keys = sorted(k for k in sums if k != "all") + ["all"]
    records = [{"used": k, "n": sums[k][0], "used_mass": sums[k][1] / sums[k][0], "blind_mass": sums[k][2] / sums[k][0],
                "argmax_used": sums[k][3] / sums[k][0]} for k in keys]
    return LetterReuseResult(records, {"n": n, "seed": seed, "letters": len(pool),
                                       "letter_order": task.config.letter_order})
