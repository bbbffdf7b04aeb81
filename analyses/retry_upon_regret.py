"""Retry upon regret (Part 2.2): when a detector says the sentence being written is a mistake, roll back to the
end of the previous sentence and resample it — compared with greedy, beam search and a perfect detector.

Decoding is sentence by sentence with a KV cache (:class:`analyses._igsm_common.Decoder`). Each sentence is
first written greedily up to "Define A as"; there the detector is asked whether A can be computed now. If it
fires (and fewer than ``max_retries`` retries were used on this problem), the sentence is rolled back and
resampled at ``retry_temperature``; otherwise the sentence is finished. Detectors:

* ``"probe"`` — the regret probe of :mod:`analyses.regret_probe`, trained on this model (the paper's method);
* ``"perfect"`` — the ground truth (A is not a parameter, already defined, or has an undefined parent);
* any :class:`analyses.regret_probe.RegretProbe`, or a callable ``(problem, ids, state) -> bool``.

Beam search is token-level over the whole solution (length-normalised log-probability), the paper's baseline.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from analyses._igsm_common import Decoder, check_positive, eval_problems, greedy_generate, igsm_task, op_rows, \
    param_names, pick_cache, tally_by_op, verify_ids
from analyses.reasoning_level import plot_by_op
from analyses.regret_probe import RegretProbe, fit_regret_probe
from analyses.registry import register
from analyses.result import AnalysisResult
from plm_interp.model import KVCache
from tasks.igsm import Problem, prompt_ids, verify


def perfect_detector(task) -> Callable:
    """Ground truth: fires when the parameter named by "Define <name> as" cannot be computed at this point."""
    tok = task.tokenizer

    def fires(problem: Problem, ids: list[int], state) -> bool:
        sol = ids.index(tok.sol)
        start = max(i for i in range(sol, len(ids)) if i == sol or tok.vocab[ids[i]] == ".") + 1
        name = tuple(ids[start + 1 : -1])  # between "Define" and "as"
        a = param_names(problem, tok).get(name)
        if a is None:
            return True
        known = {s.param for s in verify(problem, [tok.vocab[t] for t in ids[sol + 1 : start]]).accepted}
        return a in known or any(q not in known for q in problem.graph.parents(a))

    return fires


def retry_decode(model, problem: Problem, tok, detector: Callable, hook: str | None, max_retries: int = 10,
                 retry_temperature: float = 1.0, max_new_tokens: int = 256, generator=None) -> tuple[list[int], int]:
    """One solution with retries; returns (ids, retries used)."""
    prompt = prompt_ids(problem, tok)
    d = Decoder(model, prompt, capture=hook)
    as_, period, eos = tok.ids["as"], tok.ids["."], tok.eos
    budget = lambda: min(max_new_tokens - (len(d.ids) - len(prompt)), d.room)
    retries, temp = 0, 0.0
    while budget() > 0:
        start = d.mark()
        head = d.sample_until({as_, period, eos}, temp, generator, budget())
        if head and head[-1] == as_ and retries < max_retries and detector(problem, d.ids, d.state):
            retries += 1
            d.rollback(start)
            temp = retry_temperature
            continue
        if head and head[-1] == eos:
            break
        if head and head[-1] == as_:
            tail = d.sample_until({period, eos}, temp, generator, budget())
            if tail and tail[-1] == eos:
                break
        temp = 0.0
    return d.ids, retries


@torch.no_grad()
def beam_decode(model, prompt: list[int], eos: int, width: int = 4, max_new_tokens: int = 256) -> list[int]:
    """Token-level beam search; the best finished hypothesis by mean log-probability per new token."""
    dev = model.W_E.device
    budget = min(max_new_tokens, model.cfg.n_ctx - len(prompt))
    cache = KVCache.empty(model.cfg.n_layers)
    logits = model(torch.tensor([prompt], device=dev), past_kv_cache=cache)[:, -1]
    seqs: list[list[int]] = [[]]
    scores = torch.zeros(1, device=dev)
    finished: list[tuple[float, list[int]]] = []
    for step in range(budget):
        logp = torch.log_softmax(logits.float(), -1) + scores[:, None]
        top = logp.flatten().topk(min(width * 2, logp.numel()))
        keep_rows, keep_tok, keep_score = [], [], []
        for s, i in zip(top.values.tolist(), top.indices.tolist()):
            row, t = divmod(i, logp.shape[1])
            if t == eos:
                finished.append((s / (len(seqs[row]) + 1), seqs[row] + [t]))
            else:
                keep_rows.append(row), keep_tok.append(t), keep_score.append(s)
            if len(keep_rows) == width:
                break
        if len(finished) >= width or not keep_rows or step == budget - 1:
            break
        rows = torch.tensor(keep_rows, device=dev)
        cache = pick_cache(cache, rows)
        seqs = [seqs[r] + [t] for r, t in zip(keep_rows, keep_tok)]
        scores = torch.tensor(keep_score, device=dev)
        logits = model(torch.tensor(keep_tok, device=dev)[:, None], past_kv_cache=cache)[:, -1]
    if not finished:
        finished = [(float(s) / max(len(q), 1), q) for s, q in zip(scores.tolist(), seqs)]
    return prompt + max(finished, key=lambda f: f[0])[1]


@dataclass
class RetryUponRegretResult(AnalysisResult):
    """Accuracy, retries and unnecessary work per decoding method (plain, retry upon regret, beam) and op."""
    #: one record per (method, op) plus op = "all": n, acc, retries per problem, unnecessary params/ops
    records: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return self.records

    def accuracy(self, method: str, op: int | str = "all") -> float:
        return next(r["acc"] for r in self.records if r["method"] == method and r["op"] == op)

    def plot(self):
        return plot_by_op(self.records, "method", "retry upon regret vs greedy / beam")


@register("retry_upon_regret")
def retry_upon_regret(model, task=None, detector: Any = "probe", max_retries: int = 10, beam: int = 4, n: int = 64,
                      sets: tuple[str, ...] | None = None, retry_temperature: float = 1.0, max_new_tokens: int = 256,
                      perfect: bool = True, n_probe_train: int = 512, seed: int = 0, progress: bool = True
                      ) -> RetryUponRegretResult:
    """Accuracy per op of greedy, beam search (width ``beam``; 0 skips it), retry upon regret with ``detector``
    and (``perfect=True``) with the ground-truth detector, on ``n`` problems of each of ``sets`` (default: the
    task's largest OOD op, where mistakes happen — the paper's op = 23)."""
    task = igsm_task(model, task)
    tok = task.tokenizer
    check_positive(n=n, max_new_tokens=max_new_tokens)
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"field 'max_retries' = {max_retries!r}: must be an int >= 0")
    if not isinstance(beam, int) or beam < 0:
        raise ValueError(f"field 'beam' = {beam!r}: must be an int >= 0 (0 skips beam search)")
    if sets is None:
        from tasks.igsm.task import OOD_OPS

        sets = (f"op={OOD_OPS[task.preset][-1]}",)
    probs = [p for ps in eval_problems(task, n, sets, seed + 1234).values() for p in ps]
    detectors: dict[str, tuple[Callable, str | None]] = {}
    if detector == "probe" or isinstance(detector, RegretProbe):
        probe = detector if isinstance(detector, RegretProbe) else fit_regret_probe(
            model, task, [s.problem for s in task.sample(n_probe_train, seed=seed).samples], seed=seed)
        detectors["retry(probe)"] = (lambda p, ids, state: probe.fires(state), probe.hook)
    elif detector == "perfect":
        perfect = True
    elif callable(detector):
        detectors["retry(custom)"] = (detector, None)
    elif detector is not None:
        raise ValueError(f"field 'detector' = {detector!r}: must be 'probe', 'perfect', None, a RegretProbe or a "
                         "callable (problem, ids, state) -> bool")
    if perfect:
        detectors["retry(perfect)"] = (perfect_detector(task), None)
    outputs: dict[str, tuple[list[list[int]], list[int]]] = {}
    outputs["greedy"] = (greedy_generate(model, probs, tok, max_new_tokens, progress, desc="greedy"), [0] * len(probs))
    if beam:
        outputs[f"beam{beam}"] = ([beam_decode(model, prompt_ids(p, tok), tok.eos, beam, max_new_tokens)
                                   for p in tqdm(probs, desc=f"beam{beam}", disable=not progress, leave=False)],
                                  [0] * len(probs))
    gen = torch.Generator(device=model.W_E.device).manual_seed(seed)
    for name, (fn, hook) in detectors.items():
        res = [retry_decode(model, p, tok, fn, hook, max_retries, retry_temperature, max_new_tokens, gen)
               for p in tqdm(probs, desc=name, disable=not progress, leave=False)]
        outputs[name] = ([r[0] for r in res], [r[1] for r in res])
    records = []
    for name, (ids, retries) in outputs.items():
        rows = op_rows({"method": name}, tally_by_op(probs, [verify_ids(p, tok, x) for p, x in zip(probs, ids)]))
        by_op: dict[Any, list[int]] = {}
        for p, r in zip(probs, retries):
            by_op.setdefault(p.op, []).append(r)
            by_op.setdefault("all", []).append(r)
        for row in rows:  # retries here = rollbacks by the detector (the verifier sees no [BACK] sentences)
            row["retries"] = sum(by_op[row["op"]]) / len(by_op[row["op"]])
        records += rows
    return RetryUponRegretResult(records, {"n": n, "sets": list(sets), "max_retries": max_retries, "beam": beam,
                                           "retry_temperature": retry_temperature, "seed": seed})
