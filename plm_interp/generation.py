"""Sampling with a KV cache.

Positions are absolute in every scheme's cache (see ``model/kv_cache.py``), so cached decoding produces
exactly the tokens of a no-cache loop — also for absolute positions past half the context, where
TransformerLens 3.9's HookedTransformer goes wrong. Prompts of different lengths are decoded in groups of
equal length (no padding enters any position), and returned as a list in the input order.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch
from jaxtyping import Int
from tqdm.auto import tqdm

from plm_interp.model.kv_cache import KVCache


@torch.no_grad()
def generate(
    model,
    input: torch.Tensor | Sequence[Sequence[int] | torch.Tensor] | str | list[str] = "",   # [pos] or [batch, pos]: checked by name below
    max_new_tokens: int | None = 10,
    stop_at_eos: bool = True,
    eos_token_id: int | None = None,
    do_sample: bool = True,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
    freq_penalty: float = 0.0,
    use_past_kv_cache: bool = True,
    prepend_bos: bool | None = None,
    padding_side: str | None = None,
    return_type: str | None = "input",
    verbose: bool = False,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    output_logits: bool = False,
):
    """Continue each prompt; HookedTransformer's arguments, with exact KV-cached decoding.

    Args:
        input: ``[batch, pos]`` token ids, a list of prompts of possibly different lengths, or text (the task
            tokenizer; ``prepend_bos`` adds its BOS id).
        max_new_tokens: at most this many new tokens (TL's default, 10); ``None`` fills the context
            (``n_ctx - prompt length``).
        stop_at_eos / eos_token_id: rows that emit ``eos_token_id`` stop (padded with it while others continue);
            with no id given, the tokenizer's ``eos_token_id`` (as TL); a model without a tokenizer does not stop
            early (where TL would refuse).
        do_sample: False (or ``temperature=0``) is greedy; else sample, optionally from the ``top_k`` most
            likely tokens and/or the smallest set with probability ``>= top_p``; ``freq_penalty`` subtracts
            ``freq_penalty * count`` from the logit of each token already in the row (as TransformerLens).
        return_type: ``"input"`` (text for text input, else tokens), ``"tokens"`` or ``"str"``.
        verbose: a progress bar over the new tokens.
        generator / seed: the random source, for reproducible samples.
        padding_side: accepted for text lists; uneven prompts are never padded (they are decoded in groups).
        output_logits: return ``transformers``' ``GenerateDecoderOnlyOutput`` with ``sequences`` (the tokens) and
            ``logits`` (a tuple, one ``[batch, d_vocab]`` tensor per new token, before sampling), as TL does; for
            a tensor or a single text prompt.

    Returns:
        ``[batch, pos + new]`` tokens for tensor input; a list of 1-D tensors (prompt + continuation, cut after
        EOS) for a list of token prompts; text (or a list of texts) for text input or ``return_type="str"``.
    """
    if not (isinstance(temperature, (int, float)) and temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and not (isinstance(top_k, int) and 1 <= top_k <= model.cfg.d_vocab_out):
        raise ValueError(f"top_k must be an int in [1, d_vocab_out={model.cfg.d_vocab_out}], got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if not (isinstance(freq_penalty, (int, float)) and freq_penalty >= 0):
        raise ValueError(f"freq_penalty must be a number >= 0, got {freq_penalty!r}")
    if max_new_tokens is not None and (isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int)):
        raise ValueError(f"max_new_tokens must be an int, got {max_new_tokens!r}")
    if return_type not in ("input", "tokens", "str", None):
        raise ValueError(f"return_type must be 'input', 'tokens' or 'str', got {return_type!r}")
    if model.cfg.attention_dir != "causal":
        raise ValueError("generate() needs a causal model; this one has attention_dir='bidirectional'")
    if stop_at_eos and eos_token_id is None:
        eos_token_id = getattr(getattr(model, "tokenizer", None), "eos_token_id", None)
    if output_logits:
        return _with_logits(model, input, dict(max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos,
                                               eos_token_id=eos_token_id, do_sample=do_sample, top_k=top_k,
                                               top_p=top_p, temperature=temperature, freq_penalty=freq_penalty,
                                               use_past_kv_cache=use_past_kv_cache, prepend_bos=prepend_bos,
                                               verbose=verbose, generator=generator, seed=seed))
    if generator is None and seed is not None:
        generator = torch.Generator(device=model.W_E.device).manual_seed(seed)
    temperature = temperature if do_sample else 0.0
    options = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                   freq_penalty=freq_penalty, eos=eos_token_id if stop_at_eos else None,
                   use_cache=use_past_kv_cache, generator=generator, verbose=verbose)
    text_in = isinstance(input, str) or (isinstance(input, (list, tuple)) and input and isinstance(input[0], str))
    if text_in:
        texts = [input] if isinstance(input, str) else list(input)
        prompts = [model.to_tokens(t, prepend_bos=prepend_bos)[0] for t in texts]
        rows = _generate_list(model, prompts, options)
        if return_type == "tokens":
            return rows[0][None] if isinstance(input, str) else rows
        strings = [model.to_string(r) for r in rows]
        return strings[0] if isinstance(input, str) else strings
    if isinstance(input, torch.Tensor):
        out = _generate_batch(model, model.to_tokens(input), **options)
    else:
        prompts = [torch.as_tensor(p) for p in input]
        if not prompts or any(p.dim() != 1 or p.numel() == 0 for p in prompts):
            raise ValueError("each prompt in a list must be a non-empty 1-D sequence of token ids")
        out = _generate_list(model, prompts, options)
    if return_type == "str":
        return model.to_string(out) if isinstance(out, torch.Tensor) else [model.to_string(r) for r in out]
    return out


def _with_logits(model, input, kwargs: dict):
    """``output_logits=True``: the tokens and the logits each step sampled from (TL's ``GenerateDecoderOnlyOutput``).
    The logits are read with a forward hook on ``unembed.hook_out``, so the decoding itself is the one above."""
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    if not (isinstance(input, (str, torch.Tensor))):
        raise ValueError("output_logits=True takes a [batch, pos] token tensor or one text prompt (a list of prompts "
                         "of different lengths is decoded in groups, whose logits do not stack)")
    tokens = model.to_tokens(input, prepend_bos=kwargs.pop("prepend_bos"))
    steps: list[torch.Tensor] = []

    def keep_last(logits, hook):
        steps.append(logits[:, -1].detach().clone())

    with model.hooks(fwd_hooks=[("unembed.hook_out", keep_last)]):
        out = generate(model, tokens, return_type="tokens", **kwargs)
    return GenerateDecoderOnlyOutput(sequences=out, logits=tuple(steps[: out.shape[1] - tokens.shape[1]]))


def _generate_list(model, prompts: list[torch.Tensor], options: dict) -> list[torch.Tensor]:
    """Prompts of different lengths, decoded in groups of equal length (no padding enters any position)."""
    out: list[torch.Tensor | None] = [None] * len(prompts)
    for length in sorted({p.numel() for p in prompts}):
        rows = [i for i, p in enumerate(prompts) if p.numel() == length]
        batch = torch.stack([prompts[i] for i in rows])
        result = _generate_batch(model, model.to_tokens(batch), **options)
        for i, row in zip(rows, result):
            out[i] = _cut_after_eos(row.cpu(), length, options["eos"])
    return out


def _generate_batch(model, tokens, max_new_tokens, temperature, top_k, top_p, freq_penalty, eos, use_cache,
                    generator, verbose):
    room = model.cfg.n_ctx - tokens.shape[1]
    if max_new_tokens is None:
        max_new_tokens = room
    if not 0 <= max_new_tokens <= room:
        raise ValueError(f"max_new_tokens = {max_new_tokens} does not fit: prompt length {tokens.shape[1]} + "
                         f"new tokens must be <= n_ctx = {model.cfg.n_ctx}")
    with _fused(model):
        return _decode(model, tokens, max_new_tokens, temperature, top_k, top_p, freq_penalty, eos, use_cache,
                       generator, verbose)


@contextlib.contextmanager
def _fused(model):
    """Decode with the fused attention / LayerNorm kernels (``fast_path = "on"``): points with a TransformerLens
    hook still run unfused, so ``run_with_hooks`` and ``hooks()`` see every tensor; only tools that hook modules
    their own way miss ``hook_pattern`` and the LayerNorm scales here, and ``model.fast_path = "off"`` restores
    them. Why: on demo-rot (batch 256, one thread) the eval-mode hook points cost a third of decoding's time."""
    before = getattr(model, "fast_path", None)
    if before != "train":
        yield
        return
    model.fast_path = "on"
    try:
        yield
    finally:
        model.fast_path = before


def _decode(model, tokens, max_new_tokens, temperature, top_k, top_p, freq_penalty, eos, use_cache, generator,
            verbose):
    cache = KVCache.empty(model.cfg.n_layers) if use_cache else None
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    step_input = tokens
    for _ in tqdm(range(max_new_tokens), disable=not verbose):
        if cache is not None:
            logits = model(step_input, past_kv_cache=cache)[:, -1]
        else:
            logits = model(tokens)[:, -1]
        if freq_penalty:
            counts = torch.zeros_like(logits).scatter_add_(1, tokens, torch.ones_like(tokens, dtype=logits.dtype))
            logits = logits - freq_penalty * counts
        nxt = sample_next(logits, temperature, top_k, generator, top_p)
        if eos is not None:
            nxt = torch.where(finished, torch.full_like(nxt, eos), nxt)
            finished |= nxt == eos
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        step_input = nxt[:, None]
        if eos is not None and bool(finished.all()):
            break
    return tokens


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None, generator,
                top_p: float | None = None) -> torch.Tensor:
    """One token per row from ``logits[batch, vocab]``: greedy at ``temperature == 0``; else softmax sampling
    restricted to the ``top_k`` largest logits and to the smallest prefix (by probability) reaching ``top_p``."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        before = sorted_logits.softmax(-1).cumsum(-1) - sorted_logits.softmax(-1)  # mass of the better tokens
        drop_sorted = before >= top_p  # keep a token while the tokens above it hold < top_p
        logits = logits.masked_fill(drop_sorted.scatter(1, order, drop_sorted), float("-inf"))
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
