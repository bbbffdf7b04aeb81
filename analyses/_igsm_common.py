"""Helpers shared by the Part 2 (iGSM) analyses: checks, sentence-level decoding, verification tallies.

Why sentence-level decoding: the Part 2.2 experiments act at sentence boundaries (roll back to the end of the
previous sentence and resample), so the decoder here keeps a KV cache per problem that can be cut back to any
earlier length. Greedy decoding through it gives exactly the tokens of ``model.generate(..., temperature=0)``.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from jaxtyping import Float, Int

from analyses._task import resolve_task
from plm_interp.model import KVCache
from plm_interp.model.kv_cache import KVCacheEntry
from tasks.igsm import Problem, VerifyReport, prompt_ids, verify


def igsm_task(model, task=None):
    """The iGSM task for ``model``, refusing a model whose vocabulary lacks the task's special tokens."""
    task = resolve_task(model, task, kind="igsm")
    tok = task.tokenizer
    need = {"[START]": tok.start, "[MID]": tok.mid, "[END]": tok.end, "[BACK]": tok.back, "<SOL>": tok.sol,
            "<EOS>": tok.eos}
    missing = [w for w, i in need.items() if i >= model.cfg.d_vocab]
    if missing:
        raise ValueError(f"the model's vocabulary (d_vocab = {model.cfg.d_vocab}) lacks the task's special tokens "
                         f"{missing}; was it trained on this iGSM task?")
    return task


def check_positive(**values: Any) -> None:
    """Bad sizes fail by name before any work starts."""
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"field {name!r} = {v!r}: must be a positive int")


def eval_problems(task, n: int, sets: Iterable[str], seed: int) -> dict[str, list[Problem]]:
    """The named held-out sets (``"in"`` = op <= op_max, ``"reask"``, ``"op=k"``) from ``task.eval_sets``."""
    sets = list(sets)
    all_sets = task.eval_sets(n, seed=seed)
    alias = {"in": f"op<={task.config.op_max}"}
    out = {}
    for s in sets:
        key = alias.get(s, s)
        if key not in all_sets:
            raise ValueError(f"field 'sets' has {s!r}: known sets are {['in'] + sorted(all_sets)}")
        out[s] = all_sets[key]
    return out


# ---- decoding -------------------------------------------------------------------------------------------------


def cut_cache(cache: KVCache, n: int) -> KVCache:
    """The cache of the first ``n`` positions (tensors are sliced, never written in place)."""
    return KVCache([KVCacheEntry(None if e.k is None else e.k[:, :n], None if e.v is None else e.v[:, :n])
                    for e in cache.entries])


def pick_cache(cache: KVCache, rows: Int[torch.Tensor, " beam"]) -> KVCache:
    """Rows ``rows`` of a batched cache (beam search reorders its beams this way)."""
    return KVCache([KVCacheEntry(None if e.k is None else e.k[rows], None if e.v is None else e.v[rows])
                    for e in cache.entries])


class Decoder:
    """One problem's running sequence with a KV cache; sentences can be sampled and rolled back.

    ``logits`` always holds the next-token logits after ``ids``.
    """

    def __init__(self, model, prompt: list[int], capture: str | None = None):
        self.model = model
        self.capture = capture  # a hook name: ``state`` then holds its activation at the last position
        self.state: torch.Tensor | None = None
        self.ids = list(prompt)
        self.cache = KVCache.empty(model.cfg.n_layers)
        self.logits = self._feed(self.ids)
        self._saved: dict[int, tuple] = {len(self.ids): (self.logits, self.state)}

    @torch.no_grad()
    def _feed(self, new: list[int]) -> Float[torch.Tensor, " vocab"]:
        x = torch.tensor([new], dtype=torch.long, device=self.model.W_E.device)
        if self.capture is None:
            return self.model(x, past_kv_cache=self.cache)[0, -1]

        def keep(act, hook):
            self.state = act[0, -1].detach()

        with self.model.hooks(fwd_hooks=[(self.capture, keep)]):
            return self.model(x, past_kv_cache=self.cache)[0, -1]

    @property
    def room(self) -> int:
        return self.model.cfg.n_ctx - len(self.ids)

    def push(self, token: int) -> None:
        self.ids.append(int(token))
        self.logits = self._feed([int(token)])

    def mark(self) -> int:
        """Remember the current point (a sentence boundary) so :meth:`rollback` can return to it."""
        self._saved[len(self.ids)] = (self.logits, self.state)
        return len(self.ids)

    def rollback(self, n: int) -> None:
        self.ids = self.ids[:n]
        self.cache = cut_cache(self.cache, n)
        self.logits, self.state = self._saved[n]

    def sample_until(self, stops: set[int], temperature: float, generator, max_tokens: int) -> list[int]:
        """Sample tokens until one in ``stops`` (included) or the budget/context ends; returns them."""
        from plm_interp.generation import sample_next

        out: list[int] = []
        while len(out) < max_tokens and self.room > 0:
            t = int(sample_next(self.logits[None], temperature, None, generator)[0])
            out.append(t)
            self.push(t)
            if t in stops:
                break
        return out


def greedy_generate(model, problems: list[Problem], tok, max_new_tokens: int = 256, progress: bool = False,
                    desc: str = "greedy") -> list[list[int]]:
    """Greedy solutions (prompt ids up to ``<SOL>`` + continuation, cut after ``<EOS>``)."""
    from tqdm.auto import tqdm

    out = []
    for p in tqdm(problems, desc=desc, disable=not progress, leave=False):
        prompt = prompt_ids(p, tok)
        if len(prompt) >= model.cfg.n_ctx:
            raise ValueError(f"a prompt of {len(prompt)} tokens does not fit the model's n_ctx = {model.cfg.n_ctx}")
        d = Decoder(model, prompt)
        d.sample_until({tok.eos}, 0.0, None, min(max_new_tokens, d.room))
        out.append(d.ids)
    return out


def solution_words(tok, ids: list[int]) -> list[str]:
    """The words after ``<SOL>`` (what :func:`tasks.igsm.verify` reads)."""
    sol = ids.index(tok.sol)
    return [tok.vocab[t] for t in ids[sol + 1 :]]


def verify_ids(problem: Problem, tok, ids: list[int]) -> VerifyReport:
    return verify(problem, solution_words(tok, ids))


@dataclass
class Tally:
    """Running per-op counts of a set of verified generations."""

    n: int = 0
    correct: int = 0
    unnecessary_params: int = 0
    unnecessary_ops: int = 0
    defined: int = 0
    retries: int = 0
    #: kind of the first error of each wrong solution (``tasks.igsm.verify``'s ``error_kind``), e.g. reusing a
    #: letter is a naming slip where ``unknown_param`` / ``not_ready`` are planning errors
    errors: Counter = field(default_factory=Counter)

    def add(self, rep: VerifyReport) -> None:
        self.n += 1
        self.retries += rep.n_retracted
        if not rep.correct:
            self.errors[rep.error_kind] += 1
        if rep.correct:
            self.correct += 1
            self.unnecessary_params += len(rep.unnecessary_params)
            self.unnecessary_ops += rep.unnecessary_ops
            self.defined += len(rep.accepted)

    def row(self) -> dict[str, Any]:
        c = max(self.correct, 1)
        return {"n": self.n, "acc": self.correct / self.n if self.n else float("nan"),
                "unnecessary_params": self.unnecessary_params / c if self.correct else float("nan"),
                "unnecessary_ops": self.unnecessary_ops / c if self.correct else float("nan"),
                "retries": self.retries / self.n if self.n else float("nan"),
                "first_errors": dict(self.errors.most_common())}


def tally_by_op(problems: list[Problem], reports: list[VerifyReport]) -> dict[int | str, Tally]:
    """Tallies per op and over all (key ``"all"``)."""
    out: dict[int | str, Tally] = defaultdict(Tally)
    for p, r in zip(problems, reports):
        out[p.op].add(r)
        out["all"].add(r)
    return dict(out)


def op_rows(prefix: dict[str, Any], tallies: dict[int | str, Tally]) -> list[dict[str, Any]]:
    keys = sorted((k for k in tallies if k != "all"), key=int) + (["all"] if "all" in tallies else [])
    return [{**prefix, "op": k, **tallies[k].row()} for k in keys]


def sentence_spans(tok, ids: list[int]) -> list[tuple[int, int]]:
    """``(start, end)`` of each written solution sentence (end = its period), in the verifier's numbering."""
    sol = ids.index(tok.sol)
    stop = ids.index(tok.ans, sol) if tok.ans in ids[sol:] else len(ids)
    period = tok.ids["."]
    spans, start = [], sol + 1
    for p in range(sol + 1, stop):
        if ids[p] == period:
            spans.append((start, p))
            start = p + 1
    if start < stop:
        spans.append((start, stop - 1))  # unterminated last sentence
    return spans


def param_names(problem: Problem, tok) -> dict[tuple[int, ...], Any]:
    """Token ids of each parameter's name -> the parameter (to read "Define <name> as")."""
    st = problem.structure
    return {tuple(tok.encode(st.param_name(a))): a for a in problem.graph.topo}
