"""Retry upon regret (Part 2.2 §3.2, App. D.2): when a detector says the sentence being written is a mistake,
roll back to the end of the previous sentence and regenerate it — beside greedy, beam search and a perfect detector.

The paper's procedure: "when the detector fires, go back to the end of the previous sentence and regenerate with
multinomial sampling (beam 1, do_sample), at most 10 retries in total per solution"; the base decoding (the first
attempt at each sentence) is beam 1 or beam 4; "versionP" uses a perfect detector (P50: 50 retries); evaluation
is on 4,096 problems per setting, including op above the training range (PAPERS.md, 2.2 §3.2 / App. D.2).

Decoding is sentence by sentence with a KV cache (:class:`analyses.shared.decoding.Decoder`). Each sentence is first
written by the base decoding (greedy, or a width-``beam`` beam search over the sentence) up to "Define A as";
there the detector is asked whether A can be computed now. If it fires (and fewer than ``max_retries`` retries
were used on this problem), the sentence is rolled back and resampled at ``retry_temperature``; otherwise the
sentence is finished. Detectors:

* ``"probe"`` — the regret probe of :mod:`analyses.regret_probe` (a can_next V-probe at "as"), trained on this
  model (the paper's method);
* ``"perfect"`` — the ground truth (A is not a parameter, already defined, or has an undefined parent);
* any :class:`plm_interp.probes.VProbe`, or a callable ``(problem, ids, sentence_start) -> bool``.

Every accuracy carries a 95% Wilson interval, and every method its difference from greedy on the *same*
problems with a paired 95% interval (problems whose outcome does not change add no noise to it), so ``n`` can be
chosen to resolve a 2-point gain (see ``docs/part2_analyses.md`` for the n used there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from analyses.shared.decoding import Decoder, greedy_generate, pick_cache
from analyses.shared.igsm_inputs import check_positive, eval_problems, igsm_task
from analyses.shared.igsm_text import param_names, verify_ids
from analyses.shared.records import RecordsResult
from analyses.shared.tally import op_rows, tally_by_op
from analyses.shared.plots import plot_by_op
from analyses.shared.v_queries import fit_regret_probe
from analyses.registry import register
from analyses.result import Z95, draw_headlines, headline, wilson
from plm_interp.probes import VProbe
from plm_interp.model import KVCache
from tasks.igsm import Problem, prompt_ids, verify


def sentence_start(tok, ids: list[int]) -> int:
    """Index of the first token of the sentence being written (after the last "." or ``<SOL>``)."""
    sol = ids.index(tok.sol)
    return max(i for i in range(sol, len(ids)) if i == sol or tok.vocab[ids[i]] == ".") + 1


def perfect_detector(task) -> Callable:
    """Ground truth: fires when the parameter named by "Define <name> as" cannot be computed at this point."""
    tok = task.tokenizer

    def fires(problem: Problem, ids: list[int], start: int | None = None) -> bool:
        sol = ids.index(tok.sol)
        start = sentence_start(tok, ids) if start is None else start
        name = tuple(ids[start + 1 : -1])  # between "Define" and "as"
        a = param_names(problem, tok).get(name)
        if a is None:
            return True
        known = {s.param for s in verify(problem, [tok.vocab[t] for t in ids[sol + 1 : start]]).accepted}
        return a in known or any(q not in known for q in problem.graph.parents(a))

    return fires


@torch.no_grad()
def beam_search(model, cache: KVCache, logits: torch.Tensor, width: int, stops: set[int], budget: int) -> list[int]:
    """Best continuation after a cached prefix (``logits [1, vocab]`` = its next-token logits) by beam search.

    Hypotheses end at a token of ``stops``; a finished candidate counts only when it ranks among the top
    ``width`` candidates of its step (so width 1 is exactly greedy), and the search ends once ``width`` have
    finished. Score: mean log-probability per new token. ``cache`` is not modified.
    """
    dev = logits.device
    cache = pick_cache(cache, torch.zeros(1, dtype=torch.long, device=dev))
    seqs: list[list[int]] = [[]]
    scores = torch.zeros(1, device=dev)
    finished: list[tuple[float, list[int]]] = []
    for step in range(budget):
        logp = torch.log_softmax(logits.float(), -1) + scores[:, None]
        top = logp.flatten().topk(min(width * 2, logp.numel()))
        keep_rows, keep_tok, keep_score = [], [], []
        for rank, (s, i) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            row, t = divmod(i, logp.shape[1])
            if t in stops:
                if rank < width:
                    finished.append((s / (len(seqs[row]) + 1), seqs[row] + [t]))
            else:
                keep_rows.append(row), keep_tok.append(t), keep_score.append(s)
            if len(keep_rows) == width:
                break
        if len(finished) >= width or not keep_rows or step == budget - 1:
            if not finished:
                finished = [(s / (len(seqs[r]) + 1), seqs[r] + [t]) for r, t, s in zip(keep_rows, keep_tok, keep_score)]
            break
        rows = torch.tensor(keep_rows, device=dev)
        cache = pick_cache(cache, rows)
        seqs = [seqs[r] + [t] for r, t in zip(keep_rows, keep_tok)]
        scores = torch.tensor(keep_score, device=dev)
        logits = model(torch.tensor(keep_tok, device=dev)[:, None], past_kv_cache=cache)[:, -1]
    return max(finished, key=lambda f: f[0])[1] if finished else []


@torch.no_grad()
def beam_decode(model, prompt: list[int], eos: int, width: int = 4, max_new_tokens: int = 256) -> list[int]:
    """Token-level beam search over the whole solution (the paper's beam baseline)."""
    budget = min(max_new_tokens, model.cfg.n_ctx - len(prompt))
    cache = KVCache.empty(model.cfg.n_layers)
    logits = model(torch.tensor([prompt], device=model.W_E.device), past_kv_cache=cache)[:, -1]
    return prompt + beam_search(model, cache, logits, width, {eos}, budget)


def retry_decode(model, problem: Problem, tok, detector: Callable, max_retries: int = 10,
                 retry_temperature: float = 1.0, max_new_tokens: int = 256, generator=None, beam: int = 1
                 ) -> tuple[list[int], int]:
    """One solution with retries; returns (ids, retries used). ``beam`` > 1: each sentence's first attempt is a
    width-``beam`` beam search over the sentence; retries are always sampled."""
    prompt = prompt_ids(problem, tok)
    d = Decoder(model, prompt)
    as_, period, eos = tok.ids["as"], tok.ids["."], tok.eos
    budget = lambda: min(max_new_tokens - (len(d.ids) - len(prompt)), d.room)
    retries, temp = 0, 0.0
    while budget() > 0:
        start = d.mark()
        planned: list[int] = []
        if temp == 0.0 and beam > 1:
            planned = beam_search(model, d.cache, d.logits[None], beam, {period, eos}, budget())
            cut = planned.index(as_) + 1 if as_ in planned else len(planned)
            head, planned = planned[:cut], planned[cut:]
            for t in head:
                d.push(t)
        else:
            head = d.sample_until({as_, period, eos}, temp, generator, budget())
        if head and head[-1] == as_ and retries < max_retries and detector(problem, d.ids, start):
            retries += 1
            d.rollback(start)
            temp = retry_temperature
            continue
        if head and head[-1] == eos:
            break
        if head and head[-1] == as_:
            if planned:
                for t in planned[: budget()]:
                    d.push(t)
                tail = planned
            else:
                tail = d.sample_until({period, eos}, temp, generator, budget())
            if tail and tail[-1] == eos:
                break
        temp = 0.0
    return d.ids, retries


def paired_diff(a: list[bool], b: list[bool]) -> tuple[float, float, float]:
    """Mean of ``a - b`` over the same problems and its 95% normal interval (paired: unchanged outcomes add no
    variance)."""
    d = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(d)
    if n == 0:
        return (float("nan"),) * 3
    m = sum(d) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1)) if n > 1 else 0.0
    half = Z95 * sd / math.sqrt(n)
    return m, m - half, m + half


@dataclass
class RetryUponRegretResult(RecordsResult):
    """Accuracy (95% CI), retries and the paired gain over greedy per decoding method, set and op.

    ``records``: one per (set, method, op) plus op = "all": n, acc, lo, hi, vs_greedy (+ lo/hi), retries, ..."""

    def accuracy(self, method: str, op: int | str = "all", set: str | None = None) -> float:
        return next(r["acc"] for r in self.records if r["method"] == method and r["op"] == op
                    and (set is None or r["set"] == set))

    def headlines(self) -> list[dict[str, Any]]:
        out = []
        for r in self.records:
            if r["op"] != "all" or r["method"] == "greedy":
                continue
            g = next(x for x in self.records if x["set"] == r["set"] and x["op"] == "all" and x["method"] == "greedy")
            gain, lo, hi = r["vs_greedy"], r["vs_greedy_lo"], r["vs_greedy_hi"]
            words = (f"gain over greedy {100 * gain:+.1f} points, paired 95% CI [{100 * lo:+.1f}, {100 * hi:+.1f}]: "
                     + ("beats greedy" if lo > 0 else "BELOW greedy" if hi < 0 else "does NOT beat greedy"))
            out.append(headline(f"{r['method']} acc, {r['set']}", r["acc"], r["n"], g["acc"], control_name="greedy",
                                verdict_text=words))
        return out

    def plot(self):
        import matplotlib.pyplot as plt

        heads = self.headlines()
        if not heads:
            return plot_by_op(self.records, "method", "retry upon regret vs greedy / beam")
        fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(heads)), 3.6))
        draw_headlines(ax, heads)
        ax.set_title("retry upon regret: accuracy (95% CI) vs greedy (x)")
        fig.tight_layout()
        return fig


@register("retry_upon_regret")
def retry_upon_regret(model, task=None, detector: Any = "probe", max_retries: int = 10, beam: int = 4, n: int = 128,
                      sets: tuple[str, ...] | None = None, retry_temperature: float = 1.0, max_new_tokens: int = 256,
                      perfect: tuple[int, ...] = (10,), n_probe_train: int = 1024, seed: int = 0,
                      progress: bool = True) -> RetryUponRegretResult:
    """Accuracy per set and op of greedy, beam search (width ``beam``; 0 skips every beam variant), retry upon
    regret with ``detector`` on beam-1 and beam-``beam`` base decoding, and the perfect detector with each retry
    budget in ``perfect`` (the paper's versionP = 10; ``(10, 50)`` adds P50; ``()`` skips it), on ``n`` problems of
    each of ``sets`` (default: op = op_max and the task's OOD ops above the training range — the paper's op = 15 and
    op = 20-23 for iGSM-med).

    ``n = 128`` keeps the default call to minutes on a CPU; a paired gain of 2 points needs several hundred
    problems per set (the paper uses 4,096): read the ``vs_greedy_lo`` / ``vs_greedy_hi`` columns.
    """
    task = igsm_task(model, task)
    tok = task.tokenizer
    check_positive(n=n, max_new_tokens=max_new_tokens)
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ValueError(f"field 'max_retries' = {max_retries!r}: must be an int >= 0")
    if not isinstance(beam, int) or isinstance(beam, bool) or beam < 0:
        raise ValueError(f"field 'beam' = {beam!r}: must be an int >= 0 (0 skips beam search)")
    if any(not isinstance(k, int) or k < 0 for k in perfect):
        raise ValueError(f"field 'perfect' = {perfect!r}: must be a tuple of retry budgets (ints >= 0)")
    if sets is None:
        sets = (f"op={task.config.op_max}",) + tuple(f"op={k}" for k in task.ood_ops())
    by_set = eval_problems(task, n, sets, seed + 1234)
    detectors: dict[str, tuple[Callable, int]] = {}
    if detector == "probe" or isinstance(detector, VProbe):
        probe = detector if isinstance(detector, VProbe) else fit_regret_probe(
            model, task, [s.problem for s in task.sample(n_probe_train, seed=seed).samples], seed=seed)
        detectors["retry(probe)"] = (lambda p, ids, start: probe.fires(model, ids, start), max_retries)
    elif callable(detector):
        detectors["retry(custom)"] = (detector, max_retries)
    elif detector not in (None, "perfect"):
        raise ValueError(f"field 'detector' = {detector!r}: must be 'probe', 'perfect', None, a VProbe or a "
                         "callable (problem, ids, sentence_start) -> bool")
    if detector == "perfect" and not perfect:
        perfect = (max_retries,)
    for k in perfect:
        detectors[f"retry(perfect{'' if k == 10 else k})"] = (perfect_detector(task), k)
    records = []
    for set_name, probs in by_set.items():
        outputs: dict[str, tuple[list[list[int]], list[int]]] = {}
        outputs["greedy"] = (greedy_generate(model, probs, tok, max_new_tokens, progress, desc="greedy"), [0] * len(probs))
        if beam > 1:
            outputs[f"beam{beam}"] = ([beam_decode(model, prompt_ids(p, tok), tok.eos, beam, max_new_tokens)
                                       for p in tqdm(probs, desc=f"beam{beam}", disable=not progress, leave=False)],
                                      [0] * len(probs))
        for bw in ((1, beam) if beam > 1 else (1,)):
            for name, (fn, k) in detectors.items():
                label = name if bw == 1 else f"{name}+beam{bw}"
                gen = torch.Generator(device=model.W_E.device).manual_seed(seed)
                res = [retry_decode(model, p, tok, fn, k, retry_temperature, max_new_tokens, gen, bw)
                       for p in tqdm(probs, desc=label, disable=not progress, leave=False)]
                outputs[label] = ([r[0] for r in res], [r[1] for r in res])
        correct = {m: [verify_ids(p, tok, x).correct for p, x in zip(probs, ids)] for m, (ids, _) in outputs.items()}
        for name, (ids, retries) in outputs.items():
            rows = op_rows({"set": set_name, "method": name},
                           tally_by_op(probs, [verify_ids(p, tok, x) for p, x in zip(probs, ids)]))
            for row in rows:  # retries here = rollbacks by the detector (the verifier sees no [BACK] sentences)
                sel = [i for i, p in enumerate(probs) if row["op"] == "all" or p.op == row["op"]]
                row["retries"] = sum(retries[i] for i in sel) / len(sel)
                row["lo"], row["hi"] = wilson(row["acc"] * row["n"], row["n"])
                row["vs_greedy"], row["vs_greedy_lo"], row["vs_greedy_hi"] = paired_diff(
                    [correct[name][i] for i in sel], [correct["greedy"][i] for i in sel])
            records += rows
    return RetryUponRegretResult(records, {"n": n, "sets": list(sets), "max_retries": max_retries, "beam": beam,
                                           "perfect": list(perfect), "retry_temperature": retry_temperature,
                                           "seed": seed})
