"""``CFGTask``: the CFG experiments behind the :class:`tasks.base.Task` contract.

>>> task = CFGTask("demo")
>>> batch = next(task.batches(batch_size=2, n_ctx=64, seed=0))
>>> tuple(batch.tokens.shape), int(batch.tokens[0, 0]) == BOS
((2, 64), True)
>>> s = task.sample(3)
>>> s.tokens.shape[0], s.s.shape[-1]
(3, 4)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from tasks.base import Batch, Task
from tasks.cfg.corruption import flip_tokens
from tasks.cfg.grammar import Grammar
from tasks.cfg.loading import BUILTINS, load_builtin, resolve
from tasks.cfg.implicit import implicit_grammar
from tasks.cfg.labels import LabelledBatch
from tasks.cfg.next_token import next_token_logprobs
from tasks.cfg.parser import accepts
from tasks.cfg.sampler import sample
from tasks.cfg.tokenizer import BOS, EOS, MASK, N_SPECIAL, PAD, CFGTokenizer

_TRAIN, _EVAL, _MLM = 0, 1, 2   # stream tags: train/eval/mask streams of one seed never share randomness


@dataclass
class MaskedBatch(Batch):
    """A masked-LM batch: ``tokens`` is the encoder input, ``targets`` the original ids, ``loss_mask`` the
    selected positions (predict ``targets`` at exactly those positions, not shifted)."""

    targets: Int[torch.Tensor, "batch pos"] | None = None


@dataclass
class CFGSamples:
    """Fresh strings as padded tensors ``BOS x EOS PAD...`` with labels aligned to token positions.

    Label tensors hold -1 (``b``: False) at BOS/EOS/PAD; ``terminal_mask`` marks the terminal positions.
    ``labels`` keeps the flat numpy form (see :mod:`tasks.cfg.labels`).
    """

    tokens: Int[torch.Tensor, "batch pos"]
    lengths: Int[torch.Tensor, " batch"]
    terminal_mask: Bool[torch.Tensor, "batch pos"]
    s: Int[torch.Tensor, "batch pos depth"]
    p: Int[torch.Tensor, "batch pos depth"]
    b: Bool[torch.Tensor, "batch pos depth"]
    b_sharp: Int[torch.Tensor, "batch pos"]
    labels: LabelledBatch

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def strings(self) -> list[np.ndarray]:
        """Terminal ids of each string."""
        return self.labels.strings()


class CFGTask(Task):
    """Fresh samples of a layered CFG for next-token (decoder) and masked-LM (encoder) training.

    Args:
        grammar: a built-in name (``"cfg3f"``, ``"demo"``, ...), a grammar file, a :class:`Grammar` or its dict.
        implicit: ``None`` or ``{"bags": [[token ids] per terminal], "n_tokens": int}`` (Result 10).
        corrupt_frac: fraction of training strings corrupted by token flips (Results 12-13); 0 = clean.
        flip_rate: per-token flip probability inside a corrupted string.
        mask_rate: masked-LM selection rate (BERT: 15%; of those 80% MASK, 10% random token, 10% unchanged).
    """

    kind = "cfg"

    def __init__(self, grammar: "str | Grammar | dict" = "cfg3f", implicit: dict | None = None,
                 corrupt_frac: float = 0.0, flip_rate: float = 0.15, mask_rate: float = 0.15):
        for name, v in (("corrupt_frac", corrupt_frac), ("flip_rate", flip_rate), ("mask_rate", mask_rate)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                raise ValueError(f"CFGTask field {name!r} = {v!r} must be a number in [0, 1]")
        self.grammar = resolve(grammar)
        self.implicit = None
        if implicit is not None:
            if not isinstance(implicit, dict) or "bags" not in implicit:
                raise ValueError(f"CFGTask field 'implicit' = {implicit!r} must be None or a dict with 'bags'")
            bags = [list(map(int, b)) for b in implicit["bags"]]
            self.implicit = {"bags": bags, "n_tokens": implicit.get("n_tokens")}
        #: the grammar over *observed* tokens: the implicit expansion when ``implicit`` is set
        self.observed = (implicit_grammar(self.grammar, self.implicit["bags"], self.implicit["n_tokens"])
                         if self.implicit else self.grammar)
        if self.implicit:
            self.implicit["n_tokens"] = self.observed.n_terminals
        self.corrupt_frac, self.flip_rate, self.mask_rate = float(corrupt_frac), float(flip_rate), float(mask_rate)
        self.tokenizer = CFGTokenizer(self.observed.terminals)

    # --- contract ---------------------------------------------------------------------------------------------
    @property
    def d_vocab(self) -> int:
        """``4 + T`` for the observed grammar's ``T`` terminals: the four specials, then one id per terminal."""
        return self.tokenizer.d_vocab

    def spec(self) -> dict[str, Any]:
        """JSON-able description kept in the model config: a built-in grammar by name, any other grammar in full
        (:meth:`Grammar.to_dict`)."""
        name = self.grammar.name
        builtin = name in BUILTINS and load_builtin(name) == self.grammar
        return {"kind": self.kind, "grammar": name if builtin else self.grammar.to_dict(),
                "implicit": self.implicit, "corrupt_frac": self.corrupt_frac, "flip_rate": self.flip_rate,
                "mask_rate": self.mask_rate}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "CFGTask":
        """Inverse of :meth:`spec`; another ``kind`` or an unknown field raises, naming it."""
        spec = dict(spec)
        if spec.pop("kind", "cfg") != "cfg":
            raise ValueError(f"task spec field 'kind' = {spec.get('kind')!r} is not 'cfg'")
        known = {"grammar", "implicit", "corrupt_frac", "flip_rate", "mask_rate"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"cfg task spec has unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CFGTask) and self.spec() == other.spec()

    def __repr__(self) -> str:
        return f"CFGTask(grammar={self.grammar.name!r}, d_vocab={self.d_vocab})"

    # --- data streams -------------------------------------------------------------------------------------------
    def _stream_tokens(self, rng: np.random.Generator, n_tok: int) -> np.ndarray:
        """At least ``n_tok`` tokens of ``BOS s EOS BOS s EOS ...`` (fresh strings, optionally corrupted)."""
        lo, _ = self.observed.length_range()
        chunks, have = [], 0
        mean = self._mean_len()
        while have < n_tok:
            n = max(1, int((n_tok - have) / (mean + 2) * 1.1) + 1)
            lab = sample(self.observed, n, seed=rng)
            toks = lab.tokens
            if self.corrupt_frac > 0:
                bad = np.repeat(rng.random(n) < self.corrupt_frac, lab.lengths)
                flipped = flip_tokens(self.observed, lab, self.flip_rate, seed=rng).tokens
                toks = np.where(bad, flipped, toks)
            k = np.repeat(np.arange(n), lab.lengths)
            out = np.empty(len(toks) + 2 * n, dtype=np.int64)
            out[np.arange(len(toks)) + 2 * k + 1] = toks + N_SPECIAL
            out[lab.offsets[:-1] + 2 * np.arange(n)] = BOS
            out[lab.offsets[1:] + 2 * np.arange(n) + 1] = EOS
            chunks.append(out)
            have += len(out)
        return np.concatenate(chunks)[:n_tok]

    def _mean_len(self) -> float:
        if not hasattr(self, "_mean"):
            from tasks.cfg.expectations import expected_length

            self._mean = float(expected_length(self.observed))
        return self._mean

    @staticmethod
    def _check_geometry(batch_size, n_ctx, seed, start) -> None:
        for name, v, lo in (("batch_size", batch_size, 1), ("n_ctx", n_ctx, 1), ("seed", seed, 0), ("start", start, 0)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} = {v!r} must be an int >= {lo}")

    def batches(self, batch_size: int, n_ctx: int, seed: int, start: int = 0) -> Iterator[Batch]:
        """Endless packed next-token batches ``[batch_size, n_ctx]``; batch ``i`` depends only on ``(seed, i)``."""
        self._check_geometry(batch_size, n_ctx, seed, start)
        i = start
        while True:
            rng = np.random.default_rng([seed, _TRAIN, i])
            toks = self._stream_tokens(rng, batch_size * n_ctx).reshape(batch_size, n_ctx)
            yield Batch(tokens=torch.from_numpy(toks))
            i += 1

    def mlm_batches(self, batch_size: int, n_ctx: int, seed: int, start: int = 0) -> Iterator[MaskedBatch]:
        """Endless masked-LM batches for the encoder (BERT-style: ``mask_rate`` of the non-PAD positions selected;
        of those 80% become MASK, 10% a random terminal, 10% stay). Same packing and seeding as :meth:`batches`."""
        self._check_geometry(batch_size, n_ctx, seed, start)
        i = start
        while True:
            rng = np.random.default_rng([seed, _MLM, i])
            target = self._stream_tokens(rng, batch_size * n_ctx).reshape(batch_size, n_ctx)
            sel = rng.random(target.shape) < self.mask_rate
            u = rng.random(target.shape)
            rand_tok = rng.integers(N_SPECIAL, self.d_vocab, target.shape)
            inp = np.where(sel & (u < 0.8), MASK, np.where(sel & (u < 0.9), rand_tok, target))
            yield MaskedBatch(tokens=torch.from_numpy(inp), loss_mask=torch.from_numpy(sel),
                              targets=torch.from_numpy(target))
            i += 1

    # --- eval data and ground truth ---------------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0) -> CFGSamples:
        """``n`` fresh labelled strings (a stream separate from :meth:`batches` of the same seed)."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n = {n!r} must be an int >= 1")
        lab = sample(self.observed, n, seed=np.random.default_rng([seed, _EVAL]))
        return self.to_samples(lab)

    eval_set = sample

    def to_samples(self, lab: LabelledBatch) -> CFGSamples:
        """Pad a :class:`LabelledBatch` into :class:`CFGSamples` (``BOS x EOS PAD...``)."""
        n, lens = len(lab), lab.lengths
        width = int(lens.max()) + 2
        k = np.repeat(np.arange(n), lens)
        col = np.arange(len(lab.tokens)) - np.repeat(lab.offsets[:-1], lens) + 1
        tokens = np.full((n, width), PAD, dtype=np.int64)
        tokens[:, 0] = BOS
        tokens[k, col] = lab.tokens + N_SPECIAL
        tokens[np.arange(n), lens + 1] = EOS
        depth = lab.s.shape[1]
        s = np.full((n, width, depth), -1, dtype=np.int64)
        p = np.full((n, width, depth), -1, dtype=np.int64)
        b = np.zeros((n, width, depth), dtype=bool)
        bs = np.full((n, width), -1, dtype=np.int64)
        s[k, col], p[k, col], b[k, col], bs[k, col] = lab.s, lab.p, lab.b, lab.b_sharp
        mask = np.zeros((n, width), dtype=bool)
        mask[k, col] = True
        t = torch.from_numpy
        return CFGSamples(t(tokens), t(lens.astype(np.int64)), t(mask), t(s), t(p), t(b), t(bs), lab)

    def decode_rows(self, tokens) -> list[np.ndarray | None]:
        """Terminal ids of each row read as ``[BOS] x EOS ...`` (``None`` if a special token sits inside ``x`` or
        no EOS follows): the generation-accuracy reading of a model's output."""
        rows = tokens.tolist() if isinstance(tokens, torch.Tensor) else [list(r) for r in tokens]
        out: list[np.ndarray | None] = []
        for r in rows:
            r = r[1:] if r and r[0] == BOS else r
            if EOS not in r:
                out.append(None)
                continue
            x = np.asarray(r[: r.index(EOS)], dtype=np.int64)
            out.append(x - N_SPECIAL if len(x) and x.min() >= N_SPECIAL else None)
        return out

    def accepts(self, tokens) -> Bool[torch.Tensor, " batch"]:
        """Whether each row (token ids ``[BOS] x EOS ...``) holds a string of the language."""
        xs = self.decode_rows(tokens)
        ok = [i for i, x in enumerate(xs) if x is not None and len(x)]
        res = np.zeros(len(xs), dtype=bool)
        if ok:
            res[ok] = accepts(self.observed, [xs[i] for i in ok])
        return torch.from_numpy(res)

    def true_next_token_logprobs(self, samples: CFGSamples) -> Float[torch.Tensor, "batch pos d_vocab"]:
        """Exact ``log P(token at pos + 1 | tokens up to pos)`` aligned with a model's logits on ``samples.tokens``.

        Positions 0 (BOS) .. n (last terminal) are filled (-inf on impossible ids, incl. PAD/BOS/MASK); the EOS
        and PAD positions are NaN.
        """
        tables = next_token_logprobs(self.observed, samples.labels)
        n, width = samples.tokens.shape
        out = np.full((n, width, self.d_vocab), np.nan)
        for i, tab in enumerate(tables):
            m = len(tab)
            out[i, :m] = -np.inf
            out[i, :m, N_SPECIAL:] = tab[:, :-1]
            out[i, :m, EOS] = tab[:, -1]
        return torch.from_numpy(out)

    # --- presets -----------------------------------------------------------------------------------------------
    def presets(self) -> dict[str, dict[str, Any]]:
        """``paper``: GPT2-small on fresh samples, batch 96 x 512 x 100k steps (4.9B tokens), AdamW (0.9, 0.98),
        wd 0.1, lr 3e-4 linear decay. ``small``: a CPU run (4 layers x 4 heads x 128, meant for ``"demo"``)."""
        return {
            "paper": {"model": {"n_layers": 12, "n_heads": 12, "d_model": 768, "n_ctx": 512},
                      "train": {"batch_size": 96, "max_steps": 100_000, "lr": 3e-4, "betas": [0.9, 0.98],
                                "weight_decay": 0.1, "schedule": "linear"}},
            "small": {"model": {"n_layers": 4, "n_heads": 4, "d_model": 128, "n_ctx": 256},
                      "train": {"batch_size": 32, "max_steps": 2_000, "lr": 1e-3, "betas": [0.9, 0.98],
                                "weight_decay": 0.1, "schedule": "linear"}},
        }
