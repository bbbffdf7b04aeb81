"""Hugging Face tokenizers for the tasks' word-level vocabularies.

Why a real ``transformers.PreTrainedTokenizerFast`` rather than a hand-written look-alike: TransformerLens code and
researchers' notebooks use the whole Hugging Face surface (``tokenizer(texts, return_tensors="pt",
padding=True)``, ``batch_decode``, ``bos_token`` / ``pad_token_id``, ``convert_ids_to_tokens``, ``padding_side``,
``save_pretrained`` and ``AutoTokenizer.from_pretrained(dir)``). Building the tokenizer on a ``tokenizers``
``WordLevel`` model gives all of it from the library, with the task's ids unchanged: the vocabulary maps each word
to its current id, the pre-tokenizer reproduces the task's word splitter, and the decoder its rendering.

The task tokenizers themselves (``tasks.cfg.CFGTokenizer``, ``tasks.igsm.Tokenizer``) keep their own ``encode`` /
``decode`` (terminal ids and numpy arrays for CFG): they are the tasks' data path and their signatures differ from
Hugging Face's. Each has ``to_hf()`` returning the tokenizer built here, which is what ``model.tokenizer`` holds.
"""
from __future__ import annotations

from typing import Sequence

_SPACE = "\u2581"  # Metaspace's marker: "a space goes before this token" (never a vocabulary character here)


def word_level_tokenizer(
    vocab: Sequence[str],
    *,
    bos_token: str,
    eos_token: str,
    pad_token: str,
    mask_token: str | None = None,
    word_pattern: str | None = None,
    attached: Sequence[str] = (),
):
    """A ``PreTrainedTokenizerFast`` whose token ``vocab[i]`` has id ``i``.

    Text is split on whitespace, then (with ``word_pattern``) each piece into the regex's matches, the task's own
    word splitter; a word outside the vocabulary is an error (there is no unknown token). Decoding joins tokens
    with single spaces except before the ``attached`` tokens (iGSM's ``. , ; ? 's``), so ``decode(encode(text))
    == text`` for the tasks' texts. No BOS/EOS is added by the tokenizer (TL's ``tokenizer_prepends_bos = False``;
    ``model.to_tokens(prepend_bos=True)`` adds it).
    """
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as RustTokenizer
    from transformers import PreTrainedTokenizerFast

    ids = {w: i for i, w in enumerate(vocab)}
    if len(ids) != len(vocab):
        raise ValueError("vocabulary has duplicate tokens")
    missing = [t for t in (bos_token, eos_token, pad_token, mask_token)
               if t is not None and t not in ids]
    if missing:
        raise ValueError(f"special tokens {missing} are not in the vocabulary")
    tok = RustTokenizer(models.WordLevel(ids, unk_token=None))
    split = [pre_tokenizers.WhitespaceSplit()]
    if word_pattern is not None:
        split.append(pre_tokenizers.Split(Regex(word_pattern), behavior="isolated"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(split)
    if attached:
        # mark every token that is not attached with the Metaspace marker, which Metaspace turns into a space
        # (dropped before the first token)
        glued = "|".join(_regex_escape(t) for t in attached)
        tok.decoder = decoders.Sequence([decoders.Replace(Regex(f"^(?!(?:{glued})$)"), _SPACE),
                                         decoders.Metaspace(replacement=_SPACE, prepend_scheme="always")])
    specials = dict(bos_token=bos_token, eos_token=eos_token, pad_token=pad_token)
    if mask_token is not None:
        specials["mask_token"] = mask_token
    return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False, padding_side="right",
                                   model_max_length=10**9, **specials)


def _regex_escape(text: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\/" else c for c in text)


def as_hf_tokenizer(tokenizer):
    """A Hugging Face tokenizer from ``tokenizer``: one already (``PreTrainedTokenizerBase``) is returned as is; a
    task tokenizer gives its ``to_hf()``."""
    from transformers import PreTrainedTokenizerBase

    if tokenizer is None or isinstance(tokenizer, PreTrainedTokenizerBase):
        return tokenizer
    if hasattr(tokenizer, "to_hf"):
        return tokenizer.to_hf()
    raise TypeError(f"cannot use a {type(tokenizer).__name__} as the model's tokenizer: pass a Hugging Face "
                    "tokenizer or a task tokenizer (tasks.cfg.CFGTokenizer, tasks.igsm.Tokenizer), which has to_hf()")
