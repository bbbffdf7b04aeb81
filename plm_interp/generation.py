"""Sampling with a KV cache.

Positions are absolute in every scheme's cache (see ``model/kv_cache.py``), so cached decoding produces
exactly the tokens of a no-cache loop — also for absolute positions past half the context, where
TransformerLens 3.9's HookedTransformer goes wrong. Prompts of different lengths are decoded in groups of
equal length (no padding enters any position), and returned as a list in the input order.
"""
from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Int

from plm_interp.model.kv_cache import KVCache


@torch.no_grad()
def generate(
    model,
    input: Int[torch.Tensor, "batch pos"] | Sequence[Sequence[int] | torch.Tensor],
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    eos_token_id: int | None = None,
    stop_at_eos: bool = True,
    use_past_kv_cache: bool = True,
    generator: torch.Generator | None = None,
    seed: int | None = None,
):
    """Continue each prompt by sampling (``temperature=0`` is greedy).

    Args:
        input: ``[batch, pos]`` token ids, or a list of prompts of possibly different lengths.
        max_new_tokens: at most this many new tokens; default fills the context (``n_ctx - prompt length``).
        top_k: sample among the k most likely tokens only.
        eos_token_id: rows that emit it stop (they are padded with it while others continue) when
            ``stop_at_eos``.
        generator / seed: the random source, for reproducible samples.

    Returns:
        ``[batch, pos + new]`` tokens for tensor input; a list of 1-D tensors (prompt + continuation, cut
        after EOS) for list input.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= model.cfg.d_vocab_out:
        raise ValueError(f"top_k must be in [1, d_vocab_out={model.cfg.d_vocab_out}], got {top_k}")
    if model.cfg.attention_dir != "causal":
        raise ValueError("generate() needs a causal model; this one has attention_dir='bidirectional'")
    if generator is None and seed is not None:
        generator = torch.Generator(device=model.W_E.device).manual_seed(seed)
    if isinstance(input, torch.Tensor):
        return _generate_batch(model, model.to_tokens(input), max_new_tokens, temperature, top_k, eos_token_id,
                               stop_at_eos, use_past_kv_cache, generator)
    prompts = [torch.as_tensor(p, dtype=torch.long) for p in input]
    if any(p.dim() != 1 or p.numel() == 0 for p in prompts):
        raise ValueError("each prompt in a list must be a non-empty 1-D sequence of token ids")
    out: list[torch.Tensor | None] = [None] * len(prompts)
    for length in sorted({p.numel() for p in prompts}):
        rows = [i for i, p in enumerate(prompts) if p.numel() == length]
        batch = torch.stack([prompts[i] for i in rows])
        result = _generate_batch(model, model.to_tokens(batch), max_new_tokens, temperature, top_k, eos_token_id,
                                 stop_at_eos, use_past_kv_cache, generator)
        for i, row in zip(rows, result):
            out[i] = _cut_after_eos(row.cpu(), length, eos_token_id if stop_at_eos else None)
    return out


def _generate_batch(model, tokens, max_new_tokens, temperature, top_k, eos, stop_at_eos, use_cache, generator):
    room = model.cfg.n_ctx - tokens.shape[1]
    if max_new_tokens is None:
        max_new_tokens = room
    if not 0 <= max_new_tokens <= room:
        raise ValueError(f"max_new_tokens = {max_new_tokens} does not fit: prompt length {tokens.shape[1]} + "
                         f"new tokens must be <= n_ctx = {model.cfg.n_ctx}")
    cache = KVCache.empty(model.cfg.n_layers) if use_cache else None
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    step_input = tokens
    for _ in range(max_new_tokens):
        if cache is not None:
            logits = model(step_input, past_kv_cache=cache)[:, -1]
        else:
            logits = model(tokens)[:, -1]
        nxt = sample_next(logits, temperature, top_k, generator)
        if eos is not None and stop_at_eos:
            nxt = torch.where(finished, torch.full_like(nxt, eos), nxt)
            finished |= nxt == eos
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        step_input = nxt[:, None]
        if eos is not None and stop_at_eos and bool(finished.all()):
            break
    return tokens


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    """One token per row from ``logits[batch, vocab]``."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def _cut_after_eos(row: torch.Tensor, prompt_len: int, eos: int | None) -> torch.Tensor:
    if eos is None:
        return row
    hits = (row[prompt_len:] == eos).nonzero()
    return row if hits.numel() == 0 else row[: prompt_len + int(hits[0]) + 1]


def cut_cache(cache: KVCache, n: int) -> KVCache:
    """The cache of the first ``n`` positions, for decoders that roll back (tensors sliced, never written)."""
    return KVCache([type(e)(None if e.k is None else e.k[:, :n], None if e.v is None else e.v[:, :n])
                    for e in cache.entries])


def pick_cache(cache: KVCache, rows: Int[torch.Tensor, " row"]) -> KVCache:
    """Rows ``rows`` of a batched cache, in that order (beam search reorders its beams this way)."""
    return KVCache([type(e)(None if e.k is None else e.k[rows], None if e.v is None else e.v[rows])
                    for e in cache.entries])
