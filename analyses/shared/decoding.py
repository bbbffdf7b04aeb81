"""Decoding iGSM solutions from a model, on :mod:`plm_interp.generation` (one KV-cache decoder in the project).

- :func:`greedy_generate`: whole greedy solutions, batched by prompt length through ``generation.generate``.
- :class:`Decoder`: one problem's running sequence for the Part 2.2 experiments, which act at sentence
  boundaries (roll back to the end of the previous sentence and resample). It steps the model with a
  :class:`~plm_interp.model.KVCache` and samples with ``generation.sample_next``; a rollback is
  ``generation.cut_cache``. Greedy decoding through it gives exactly the tokens of ``generate(temperature=0)``.
"""
from __future__ import annotations

import torch
from jaxtyping import Float

from plm_interp.generation import cut_cache, generate, pick_cache, sample_next
from plm_interp.model import KVCache
from tasks.igsm import Problem, prompt_ids

__all__ = ["Decoder", "cut_cache", "greedy_generate", "pick_cache"]


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
    """Greedy solutions (prompt ids up to ``<SOL>`` + continuation, cut after ``<EOS>``), in input order."""
    from tqdm.auto import tqdm

    prompts = [prompt_ids(p, tok) for p in problems]
    for prompt in prompts:
        if len(prompt) >= model.cfg.n_ctx:
            raise ValueError(f"a prompt of {len(prompt)} tokens does not fit the model's n_ctx = {model.cfg.n_ctx}")
    out: list[list[int]] = [[] for _ in prompts]
    device = model.W_E.device
    for length in tqdm(sorted({len(p) for p in prompts}), desc=desc, disable=not progress, leave=False):
        rows = [i for i, p in enumerate(prompts) if len(p) == length]
        batch = [torch.tensor(prompts[i], device=device) for i in rows]
        new = min(max_new_tokens, model.cfg.n_ctx - length)
        for i, ids in zip(rows, generate(model, batch, max_new_tokens=new, temperature=0.0, eos_token_id=tok.eos)):
            out[i] = ids.tolist()
    return out
