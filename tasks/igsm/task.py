"""``IGSMTask``: the iGSM data as a :class:`tasks.base.Task` (tokenizer, fresh stream, eval sets, presets).

Training sequences are ``<BOS> problem question <SOL> solution <ANS> answer <EOS>`` (``qp``: question first),
packed whole into windows of ``n_ctx`` tokens (768 med / 1024 hard / 256 small) and padded with ``<PAD>``;
problems longer than a window are skipped. The loss covers the solution, ``<ANS>``, the answer and ``<EOS>``
(``loss_on="solution"``) or every token (``"all"``). With ``retry`` set, solutions carry retracted
"Define X as [BACK]." sentences (Part 2.2; see :mod:`tasks.igsm.retry`), the wrong parameter chosen by the
paper's rule (``retry_rule="paper"``) or by this library's first one (``"v1"``, what ``igsm-small-retry`` was
trained on).
"""
from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from jaxtyping import Bool, Int

from tasks.base import Batch, Task
from tasks.igsm.config import PRESETS, IGSMConfig
from tasks.igsm.generator import Problem, generate, reask
from tasks.igsm.retry import RETRY_MODES, RETRY_RULES, with_retries
from tasks.igsm.sequence import LOSS_ON, Encoded, encode
from tasks.igsm.solution import Step
from tasks.igsm.tokenizer import Tokenizer, get_tokenizer

#: the generator fields a spec had before ``names`` existed (a full one of those keeps the old names)
_V1_FIELDS = frozenset({"op_max", "ip_max", "op", "modulus", "fmt", "shuffle", "split", "hash_modulus",
                        "train_buckets", "max_parents", "letters", "letter_order"})
#: how many problems the construction-time feasibility check draws before refusing an ``n_ctx``
FEASIBILITY_DRAWS = 256
#: problems drawn to measure the share that fits a window: refused below MIN_FIT, warned below WARN_FIT
FIT_SAMPLE, MIN_FIT, WARN_FIT = 64, 0.1, 0.9
N_CTX = {"med": 768, "hard": 1024, "small": 256, "tiny": 192}
#: OOD eval ops per preset (the paper: med 20..23, hard 28..32)
OOD_OPS = {"med": (20, 21, 22, 23), "hard": (28, 29, 30, 31, 32), "small": (5, 6), "tiny": (4, 5)}


@dataclass
class Sample:
    """One drawn problem with everything an analysis needs."""

    problem: Problem
    steps: list[Step]
    encoded: Encoded

    @property
    def text(self) -> str:
        """The training sequence as text, with the retry sentences when ``steps`` has them."""
        return self.problem.text if self.steps is self.problem.steps else _text_with(self.problem, self.steps)

    @property
    def ids(self) -> list[int]:
        """Token ids of the sequence (``encoded.ids``)."""
        return self.encoded.ids

    @property
    def answer(self) -> int:
        """The problem's true answer (retry sentences never change it)."""
        return self.problem.answer


def _text_with(p: Problem, steps: list[Step]) -> str:
    from tasks.igsm.text import step_sentence

    sol = ". ".join(step_sentence(p.structure, s) for s in steps) + "."
    return f"<BOS> {p.problem_text} <SOL> {sol} <ANS> {p.answer} <EOS>"


@dataclass
class SampleBatch:
    """``sample(n)`` output: the samples and their right-padded ids ``tokens[b, p]`` with ``loss_mask``."""

    samples: list[Sample]
    tokens: Int[torch.Tensor, "batch pos"]
    loss_mask: Bool[torch.Tensor, "batch pos"]


class IGSMTask(Task):
    """iGSM (Parts 2.1/2.2). ``preset`` picks op/ip limits and the window; keyword overrides refine it.

    Example:
        >>> task = IGSMTask("small")
        >>> s = task.sample(2, seed=0)
        >>> s.tokens.shape[0]
        2
    """

    kind = "igsm"

    def __init__(self, preset: str = "med", *, n_ctx: int | None = None, retry: str | None = None,
                 retry_p: float = 0.5, loss_on: str = "solution", mask_retry: bool = False,
                 retry_rule: str = "paper", **config: Any):
        if preset not in PRESETS:
            raise ValueError(f"IGSMTask field 'preset' = {preset!r}: must be one of {sorted(PRESETS)}")
        if retry is not None and retry not in RETRY_MODES:
            raise ValueError(f"IGSMTask field 'retry' = {retry!r}: must be None or one of {RETRY_MODES}")
        if not isinstance(retry_p, (int, float)) or not 0 <= retry_p < 1:
            raise ValueError(f"IGSMTask field 'retry_p' = {retry_p!r}: must be in [0, 1)")
        if retry_rule not in RETRY_RULES:
            raise ValueError(f"IGSMTask field 'retry_rule' = {retry_rule!r}: must be one of {RETRY_RULES}")
        if loss_on not in LOSS_ON:
            raise ValueError(f"IGSMTask field 'loss_on' = {loss_on!r}: must be one of {LOSS_ON}")
        unknown = sorted(set(config) - set(IGSMConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"IGSMTask: unknown field(s) {unknown}; generator fields: "
                             f"{sorted(IGSMConfig.__dataclass_fields__)}")
        self.preset = preset
        self.config = PRESETS[preset].with_(**config) if config else PRESETS[preset]
        self.n_ctx = N_CTX[preset] if n_ctx is None else n_ctx
        if not isinstance(self.n_ctx, int) or self.n_ctx < 32:
            raise ValueError(f"IGSMTask field 'n_ctx' = {n_ctx!r}: must be an int >= 32")
        self.retry, self.retry_p, self.loss_on, self.mask_retry = retry, float(retry_p), loss_on, mask_retry
        self.retry_rule = retry_rule if retry is not None else "paper"  # meaningless without retry data
        self.tokenizer: Tokenizer = get_tokenizer(self.config.modulus, self.config.names)
        self._fits: set[int] = set()
        self._check_feasible(self.n_ctx)

    # ---- Task contract -------------------------------------------------------------------------------------
    @property
    def d_vocab(self) -> int:
        """Size of the iGSM word vocabulary for ``config.modulus``."""
        return len(self.tokenizer)

    def spec(self) -> dict[str, Any]:
        """JSON-able description kept in the model config: preset, task options and the full generator config."""
        out = {"kind": "igsm", "preset": self.preset, "n_ctx": self.n_ctx, "retry": self.retry,
               "retry_p": self.retry_p, "loss_on": self.loss_on, "mask_retry": self.mask_retry,
               "config": self.config.to_dict()}
        if self.retry is not None:  # which parameters the retracted sentences name (tasks.igsm.retry)
            out["retry_rule"] = self.retry_rule
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "IGSMTask":
        """Rebuild from :meth:`spec`. Generator fields may be given partially, under ``config`` or flat
        (``{"preset": "small", "op_max": 3}``); the ones not given keep the preset's values. A full nested ``config``
        without ``names`` predates that field and keeps the names and generator its model was trained on
        (``names="parseable"``, ``generator="v1"``). A full spec with retry data and no ``retry_rule`` predates that
        field: its model was trained on the first retry rule (``retry_rule="v1"``, :mod:`tasks.igsm.retry`)."""
        s = dict(spec)
        if s.pop("kind", "igsm") != "igsm":
            raise ValueError(f"IGSMTask.from_spec field 'kind' = {spec.get('kind')!r}: must be 'igsm'")
        preset = s.pop("preset", "med")
        if preset not in PRESETS:
            raise ValueError(f"IGSMTask field 'preset' = {preset!r}: must be one of {sorted(PRESETS)}")
        config = dict(s.pop("config", None) or {})
        if s.get("retry") is not None and "retry_rule" not in s and _V1_FIELDS <= set(config):
            s["retry_rule"] = "v1"  # written by spec() before the paper's rule existed
        if "names" not in config and _V1_FIELDS <= set(config):
            # a full config written before these fields existed: its model's names and generator
            config.setdefault("names", "parseable")
            config.setdefault("generator", "v1")
        config.update({k: s.pop(k) for k in list(s) if k in IGSMConfig.__dataclass_fields__})
        merged = IGSMConfig.from_dict({**PRESETS[preset].to_dict(), **config}).to_dict()
        return cls(preset, **s, **merged)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IGSMTask) and self.spec() == other.spec()

    def batches(self, batch_size: int, n_ctx: int | None = None, seed: int = 0, start: int = 0) -> Iterator[Batch]:
        """Endless batches of whole problems packed into ``n_ctx`` windows and ``<PAD>``-filled. Batch ``b`` depends
        only on ``(seed, b)``, so ``start=b`` resumes a stream exactly."""
        n_ctx = self.n_ctx if n_ctx is None else n_ctx
        for name, v in (("batch_size", batch_size), ("n_ctx", n_ctx), ("start", start + 1)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"IGSMTask.batches field {name!r} = {v!r}: must be a positive int")
        self._check_feasible(n_ctx)
        b = start
        while True:
            yield self._batch(random.Random(f"igsm:{seed}:{b}"), batch_size, n_ctx)
            b += 1

    def _check_feasible(self, n_ctx: int) -> None:
        """Refuse, before any work, settings under which :meth:`batches` could never fill a window: the largest
        op target must be realisable (a forced op the structure cannot reach) and some of the first
        ``FEASIBILITY_DRAWS`` problems must fit ``n_ctx`` tokens (problems longer than a window are skipped)."""
        if n_ctx in self._fits:
            return
        c = self.config
        try:
            generate(c.with_(op=c.target_op_max), random.Random("igsm-feasible"))
        except RuntimeError as e:
            raise ValueError(f"IGSMTask fields 'op_max'/'op' = {c.target_op_max!r} with 'ip_max' = {c.ip_max!r}: "
                             f"the generator cannot realise this op ({e})") from None
        rng = random.Random("igsm-fit")
        lengths = [len(self.draw(rng).ids) for _ in range(FIT_SAMPLE)]
        fitting = sum(n <= n_ctx for n in lengths)
        if fitting:
            self._check_fraction(n_ctx, fitting, sorted(lengths))
            self._fits.add(n_ctx)
            return
        shortest = min(lengths)
        for _ in range(FEASIBILITY_DRAWS - FIT_SAMPLE):
            n = len(self.draw(rng).ids)
            shortest = min(shortest, n)
            if n <= n_ctx:
                break
        raise ValueError(f"IGSMTask field 'n_ctx' = {n_ctx!r}: "
                         + (f"none of {FEASIBILITY_DRAWS} drawn problems fits" if shortest > n_ctx else
                            f"none of the first {FIT_SAMPLE} drawn problems fits, and almost none of the others")
                         + f" (shortest {shortest} tokens); use n_ctx >= {max(lengths)} or smaller op_max/ip_max")

    def _check_fraction(self, n_ctx: int, fitting: int, lengths: list[int]) -> None:
        """Problems longer than a window are skipped, and the long ones are the ones with many operations: with
        few fitting, the model would train on an easy slice of the task without a word. Refuse below
        ``MIN_FIT`` of the drawn problems, warn below ``WARN_FIT``, with the numbers and the n_ctx that fits."""
        share = fitting / len(lengths)
        if share >= WARN_FIT:
            return
        enough = lengths[min(len(lengths) - 1, int(WARN_FIT * len(lengths)))]
        text = (f"IGSMTask field 'n_ctx' = {n_ctx!r}: only {fitting} of {len(lengths)} drawn problems "
                f"({100 * share:.0f}%) fit (lengths {lengths[0]} .. {lengths[-1]} tokens, median "
                f"{lengths[len(lengths) // 2]}); the others are skipped, so training would see mostly the shortest "
                f"(fewest-operation) problems. Use n_ctx >= {enough} ({100 * WARN_FIT:.0f}% fit) or smaller op_max/ip_max")
        if share < MIN_FIT:
            raise ValueError(text)
        warnings.warn(text, stacklevel=3)

    def presets(self) -> dict[str, dict[str, Any]]:
        """``paper``: the paper's GPT2-rot 12/12/768 run; ``small``: a CPU-sized run for the small preset.

        ``paper`` follows Part 2.1 App. F.1 (restated in Part 2.2 App. D.1): AdamW lr 0.002, β = (0.9, 0.98), cosine
        decay down to 0.01x of the peak lr; iGSM-med batch 512 x 100k steps, weight decay 0.05; iGSM-hard batch 256 x
        200k steps, weight decay 0.03 (the same number of sequences). The ``hard`` values apply to the ``hard`` preset,
        the ``med`` values to every other. Ours, not the paper's: 1,000 warm-up steps and bf16 autocast on CUDA (the
        paper trains in fp16 mixed precision; ``train.precision`` is left at ``auto``).

        In ``[model]`` / ``[train]`` keys (``TrainConfig``'s own); AdamW on fresh data is what the trainer always does.
        """
        budget = ({"batch_size": 256, "max_steps": 200_000, "weight_decay": 0.03} if self.preset == "hard" else
                  {"batch_size": 512, "max_steps": 100_000, "weight_decay": 0.05})
        paper = {"model": {"n_layers": 12, "n_heads": 12, "d_model": 768, "positional": "rot",
                           "n_ctx": self.n_ctx, "d_vocab": self.d_vocab},
                 "train": {"lr": 2e-3, "betas": [0.9, 0.98], **budget, "schedule": "cosine",
                           "min_lr_ratio": 0.01, "warmup_steps": 1000}}
        small = {"model": {"n_layers": 4, "n_heads": 4, "d_model": 128, "positional": "rot",
                           "n_ctx": min(self.n_ctx, 256), "d_vocab": self.d_vocab},
                 "train": {"lr": 2e-3, "weight_decay": 0.05, "batch_size": 32,
                           "max_steps": 3000, "schedule": "cosine", "warmup_steps": 100}}
        return {"paper": paper, "small": small}

    # ---- data ----------------------------------------------------------------------------------------------
    def draw(self, rng: random.Random, config: IGSMConfig | None = None) -> Sample:
        """One fresh sample (with retry sentences when the task has ``retry``)."""
        p = generate(config or self.config, rng)
        steps = with_retries(p, rng, self.retry_p, self.retry, self.retry_rule) if self.retry else p.steps
        return Sample(p, steps, encode(p, self.tokenizer, steps, self.loss_on, self.mask_retry))

    def _batch(self, rng: random.Random, batch_size: int, n_ctx: int) -> Batch:
        tokens = torch.full((batch_size, n_ctx), self.tokenizer.pad, dtype=torch.long)
        mask = torch.zeros((batch_size, n_ctx), dtype=torch.bool)
        row, col, misses = 0, 0, 0
        while row < batch_size:
            e = self.draw(rng).encoded
            n = len(e.ids)
            if n > n_ctx:
                misses += 1
                if misses > 100 * FEASIBILITY_DRAWS:  # backstop: never spin forever on a too-small window
                    raise RuntimeError(f"IGSMTask: {misses} problems in a row are longer than n_ctx={n_ctx}")
                continue
            misses = 0
            if col + n > n_ctx:
                row, col = row + 1, 0
                if row == batch_size:
                    break
            tokens[row, col : col + n] = torch.tensor(e.ids)
            mask[row, col : col + n] = torch.tensor(e.loss_mask)
            col += n
        return Batch(tokens, mask)

    def sample(self, n: int, seed: int = 0, **overrides: Any) -> SampleBatch:
        """``n`` problems with text, ids, solution and ground truth; ``overrides`` change the config (e.g.
        ``op=23, split="test"``)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"IGSMTask.sample field 'n' = {n!r}: must be a positive int")
        cfg = self.config.with_(**overrides) if overrides else self.config
        rng = random.Random(f"igsm-sample:{seed}")
        samples = [self.draw(rng, cfg) for _ in range(n)]
        width = max(len(s.ids) for s in samples)
        tokens = torch.full((n, width), self.tokenizer.pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.bool)
        for b, s in enumerate(samples):
            tokens[b, : len(s.ids)] = torch.tensor(s.ids)
            mask[b, : len(s.ids)] = torch.tensor(s.encoded.loss_mask)
        return SampleBatch(samples, tokens, mask)

    def ood_ops(self) -> tuple[int, ...]:
        """The out-of-distribution ops evaluated: the preset's (paper: med 20-23, hard 28-32) while ``op_max`` is
        the preset's, else the two ops just above the overridden ``op_max`` (a preset's OOD ops need not be
        reachable with an overridden ``ip_max``)."""
        if self.config.op_max == PRESETS[self.preset].op_max and self.config.ip_max == PRESETS[self.preset].ip_max:
            return OOD_OPS[self.preset]
        return (self.config.op_max + 1, self.config.op_max + 2)

    def eval_sets(self, n: int = 256, seed: int = 1234) -> dict[str, list[Problem]]:
        """Held-out problems (test template split): in-distribution ``op<=max``, ``op=max``, each OOD op, and
        ``reask`` (the ``op<=max`` problems asked about another parameter)."""
        c = self.config.with_(split="test", op=None)
        top = c.op_max
        out: dict[str, list[Problem]] = {}
        rng = random.Random(f"igsm-eval:{seed}")
        out[f"op<={top}"] = [generate(c, rng) for _ in range(n)]
        out[f"op={top}"] = [generate(c.with_(op=top), rng) for _ in range(n)]
        for op in self.ood_ops():
            out[f"op={op}"] = [generate(c.with_(op=op), rng) for _ in range(n)]
        out["reask"] = [reask(p, rng) for p in out[f"op<={top}"]]
        return out
