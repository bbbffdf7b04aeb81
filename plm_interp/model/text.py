"""Text in and out of a HookedPLM: HookedTransformer's ``to_tokens`` / ``to_string`` / ``to_str_tokens`` /
``to_single_token`` on the task's own tokenizer, so a CFG string or an iGSM problem can be typed as text in a
notebook and ``transformer_lens.utilities.test_prompt`` (``transformer_lens.utils`` on 3.x) works.

The tokenizer comes from ``cfg.task`` (the task spec every trained and shipped model records), built the first
time it is needed through ``importlib`` — the library never imports ``tasks`` at import time (the layer rule,
docs/architecture.md) — as a Hugging Face ``PreTrainedTokenizerFast`` with the task's ids (see ``hf_tokenizer.py``). A caller may
attach another with ``model.set_tokenizer(...)`` / ``model.tokenizer = ...`` (a task tokenizer is converted).
"""
from __future__ import annotations

import importlib
from typing import Any, Sequence

import torch
from jaxtyping import Int

from plm_interp.model.hf_tokenizer import as_hf_tokenizer


class TextMixin:
    """HookedTransformer's token/text methods for :class:`~plm_interp.model.HookedPLM`."""

    _tokenizer: Any = None

    @property
    def tokenizer(self):
        """The task's tokenizer as a Hugging Face ``PreTrainedTokenizerFast`` (from ``cfg.task``, built on first
        use), or None for a model without a task."""
        if self._tokenizer is None and self.cfg.task is not None:
            task = importlib.import_module("tasks").from_spec(self.cfg.task)
            self._tokenizer = as_hf_tokenizer(task.tokenizer)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer: Any) -> None:
        self._tokenizer = as_hf_tokenizer(tokenizer)

    def set_tokenizer(self, tokenizer: Any, default_padding_side: str = "right") -> None:
        """HookedTransformer's ``set_tokenizer``: attach ``tokenizer`` (a Hugging Face tokenizer, or a task tokenizer,
        converted with its ``to_hf()``) with ``padding_side = default_padding_side``."""
        if default_padding_side not in ("left", "right"):
            raise ValueError(f"default_padding_side must be 'left' or 'right', got {default_padding_side!r}")
        tok = as_hf_tokenizer(tokenizer)
        if tok is None:
            raise ValueError("set_tokenizer needs a tokenizer, got None")
        tok.padding_side = default_padding_side
        self._tokenizer = tok

    def _need_tokenizer(self):
        tok = self.tokenizer
        if tok is None:
            raise ValueError("this model has no tokenizer (cfg.task is None): pass token ids, or attach one with "
                             "`model.tokenizer = task.tokenizer`")
        return tok

    def to_tokens(
        self,
        input: str | Sequence[str] | torch.Tensor,
        prepend_bos: bool | None = None,
        padding_side: str | None = None,
        move_to_device: bool = True,
        truncate: bool = True,
    ) -> Int[torch.Tensor, "batch pos"]:
        """Token ids ``[batch, pos]``: text goes through the task tokenizer (``prepend_bos`` adds its BOS id;
        a list of texts is padded with its PAD id on ``padding_side``, default right); an integer tensor
        ``[pos]`` or ``[batch, pos]`` passes through, checked (``prepend_bos`` does not apply to it, as in TL)."""
        if isinstance(input, torch.Tensor):
            tokens = self._checked_ids(input)
        else:
            texts = [input] if isinstance(input, str) else list(input)
            if not texts or not all(isinstance(t, str) for t in texts):
                raise TypeError("HookedPLM.to_tokens takes a str, a list of str or an integer tensor; got "
                                f"{type(input).__name__}" + (" of non-str items" if texts else " (empty)"))
            tok = self._need_tokenizer()
            bos = self.cfg.default_prepend_bos if prepend_bos is None else prepend_bos
            rows = [[tok.bos_token_id] * bool(bos) + _encode(tok, t) for t in texts]
            width = max(len(r) for r in rows)
            side = padding_side or getattr(tok, "padding_side", None) or "right"
            if side not in ("left", "right"):
                raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
            pad = [[tok.pad_token_id] * (width - len(r)) for r in rows]
            rows = [p + r if side == "left" else r + p for r, p in zip(rows, pad)]
            tokens = self._checked_ids(torch.tensor(rows, dtype=torch.long))
            if truncate:
                tokens = tokens[:, : self.cfg.n_ctx]
        return tokens.to(self.W_E.device) if move_to_device else tokens

    def _checked_ids(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"input tokens must be an integer tensor, got dtype {ids.dtype}")
        if ids.dim() not in (1, 2):
            raise ValueError(f"input tokens must have shape [pos] or [batch, pos], got shape {tuple(ids.shape)} "
                             "(a 3-D [batch, pos, d_model] residual goes in with start_at_layer=)")
        tokens = ids if ids.dim() == 2 else ids.unsqueeze(0)
        if tokens.shape[0] == 0 or tokens.shape[1] == 0:
            raise ValueError(f"input tokens are empty: shape {tuple(ids.shape)}; need at least one token per row")
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.cfg.d_vocab:
            raise ValueError(f"token ids must lie in [0, d_vocab={self.cfg.d_vocab}), got range "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        return tokens.long()

    def to_string(self, tokens: torch.Tensor | Sequence[int] | int) -> str | list[str]:
        """Text of ``tokens``: one str for a 1-D sequence (or a single id), a list of str for ``[batch, pos]``."""
        tok = self._need_tokenizer()
        ids = torch.as_tensor(tokens)
        if ids.dim() == 2:
            return [tok.decode(row.tolist()) for row in ids]
        return tok.decode(ids.reshape(-1).tolist())

    def to_str_tokens(self, input: str | Sequence[str] | torch.Tensor | Sequence[int], prepend_bos: bool | None
                      = None, padding_side: str | None = None) -> list[str] | list[list[str]]:
        """The string of each token (circuitsvis labels): a list for one text or 1-D ids, a list of lists for a
        list of texts or ``[batch, pos]`` ids (batch > 1)."""
        tok = self._need_tokenizer()
        if isinstance(input, (list, tuple)) and input and all(isinstance(t, str) for t in input):
            return [self.to_str_tokens(t, prepend_bos=prepend_bos) for t in input]
        if isinstance(input, str):
            ids = self.to_tokens(input, prepend_bos=prepend_bos)[0]
        else:
            ids = torch.as_tensor(input)
            if ids.dim() == 2 and ids.shape[0] > 1:
                return [tok.convert_ids_to_tokens(row.tolist()) for row in ids]
            ids = ids.reshape(-1)
        return tok.convert_ids_to_tokens(ids.tolist())

    def to_single_token(self, token: int | str) -> int:
        """The id of a one-token string (an id passes through); a string of several tokens raises."""
        if isinstance(token, int) and not isinstance(token, bool):
            return token
        ids = _encode(self._need_tokenizer(), token)
        if len(ids) != 1:
            raise ValueError(f"{token!r} is {len(ids)} tokens, not one")
        return ids[0]

    def to_single_str_token(self, token_id: int) -> str:
        """The string of one token id."""
        return self._need_tokenizer().convert_ids_to_tokens(int(token_id))

    def get_token_position(self, single_token: int | str, input: str | torch.Tensor, mode: str = "first",
                           prepend_bos: bool | None = None, padding_side: str | None = None) -> int:
        """HookedTransformer's ``get_token_position``: the position of ``single_token`` (an id or a one-token
        string) in ``input`` (text, ``[pos]`` or ``[1, pos]`` ids); ``mode`` "first" or "last" picks among
        repeats. A token that does not occur raises, naming it."""
        if mode not in ("first", "last"):
            raise ValueError(f"mode must be 'first' or 'last', not {mode!r}")
        tokens = self.to_tokens(input, prepend_bos=prepend_bos, padding_side=padding_side) if isinstance(input, str) \
            else torch.as_tensor(input)
        if tokens.dim() == 2:
            if tokens.shape[0] != 1:
                raise ValueError(f"input tokens of rank two must have shape [1, pos], got {tuple(tokens.shape)}")
            tokens = tokens[0]
        token = int(single_token.item()) if isinstance(single_token, torch.Tensor) else self.to_single_token(single_token)
        hits = (tokens == token).nonzero()[:, 0]
        if hits.numel() == 0:
            raise ValueError(f"token {single_token!r} (id {token}) does not occur in the input")
        return int(hits[0] if mode == "first" else hits[-1])


def _encode(tok, text: str) -> list[int]:
    """``tok``'s ids of ``text`` (no special tokens added); a word outside its vocabulary raises ``ValueError``
    naming it (the word-level tokenizers have no unknown token, and the library's own error does not name it)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    backend = getattr(tok, "backend_tokenizer", None)
    pre = None if backend is None else backend.pre_tokenizer
    if pre is not None and backend.model.__class__.__name__ == "WordLevel":
        vocab = tok.get_vocab()
        unknown = sorted({w for w, _ in pre.pre_tokenize_str(text) if w not in vocab})
        if unknown:
            raise ValueError(f"text has words not in the task's vocabulary: {unknown}")
    return tok.encode(text, add_special_tokens=False)
