"""A word-level tokenizer with a fixed vocabulary (no downloads), saved as ``vocab_<modulus>.json``.

Words are split on spaces; ``. , ; ?`` and the possessive ``'s`` are separate tokens written without a space
before them ("Sainsbury's's Milk" is ``Sainsbury 's 's Milk``), and ``'n`` (in "Shop 'n Save") is a word, so
``decode(encode(text)) == text`` for every text the generator writes (single spaces) and for the authors' texts.
Unknown words raise a ``ValueError`` naming them. Vocabulary, in id order: specials (``<PAD>`` = 0, ``<BOS> <SOL>
<ANS> <EOS> [BACK] [START] [MID] [END]``), punctuation and operators, template words, the numbers
``0..modulus-1``, the 52 letters, every word of the 1,499 "parseable" names (the first vocabulary), then the words
only the other 54 names use (appended, so every earlier id is unchanged).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from tasks.igsm.hierarchy import TEMPLATE_WORDS, WORD_RE, load_hierarchy
from tasks.igsm.solution import LETTERS

SPECIALS = ("<PAD>", "<BOS>", "<SOL>", "<ANS>", "<EOS>", "[BACK]", "[START]", "[MID]", "[END]")
PUNCT = (".", ",", ";", "?", "'s", "=", "+", "-", "*")
ATTACHED = frozenset({".", ",", ";", "?", "'s"})
_WORD = WORD_RE


def build_vocab(modulus: int = 23, names: str = "all") -> list[str]:
    """The vocabulary for ``modulus`` (deterministic; the shipped JSON files are its output); with
    ``names="parseable"`` the first vocabulary, a prefix of the full one."""
    if not isinstance(modulus, int) or modulus < 2:
        raise ValueError(f"vocabulary field 'modulus' = {modulus!r}: must be an int >= 2")
    words = list(SPECIALS) + list(PUNCT) + sorted(TEMPLATE_WORDS) + [str(v) for v in range(modulus)]
    words += list(LETTERS) + load_hierarchy(names="parseable").words
    # the words only the other 54 names use come last, so the ids above stay those of the first vocabulary
    # (shipped models were trained on it)
    if names == "all":
        words += load_hierarchy(names="all").words
    seen: set[str] = set()
    return [w for w in words if not (w in seen or seen.add(w))]  # type: ignore[func-returns-value]


class Tokenizer:
    """``encode``/``decode`` between canonical iGSM text and ids; ``words`` is the pre-tokenizer."""

    def __init__(self, vocab: list[str], modulus: int):
        self.vocab = list(vocab)
        self.modulus = modulus
        self.ids = {w: t for t, w in enumerate(self.vocab)}
        if len(self.ids) != len(self.vocab):
            raise ValueError("vocabulary field 'tokens' has duplicates")
        missing = [w for w in SPECIALS if w not in self.ids]
        if missing:
            raise ValueError(f"vocabulary field 'tokens' lacks special tokens {missing}")
        self.pad, self.bos, self.sol, self.ans, self.eos, self.back, self.start, self.mid, self.end = (
            self.ids[w] for w in SPECIALS
        )

    def __len__(self) -> int:
        return len(self.vocab)

    @staticmethod
    def words(text: str) -> list[str]:
        """Split ``text`` into vocabulary words: spaces separate them; ``. , ; ?`` and ``'s`` are words of their own."""
        return _WORD.findall(text)

    def encode(self, text: str) -> list[int]:
        """Ids of the words of ``text`` (see :meth:`words`); unknown words raise ``ValueError``, naming them."""
        ws = _WORD.findall(text)
        try:
            return [self.ids[w] for w in ws]
        except KeyError:
            unknown = sorted({w for w in ws if w not in self.ids})
            raise ValueError(f"text has words not in the iGSM vocabulary: {unknown}") from None

    def decode(self, ids) -> str:
        """Text of ``ids``, with ``. , ; ?`` and ``'s`` attached to the word before (the inverse of :meth:`encode`
        on generator text); an id outside the vocabulary raises."""
        out: list[str] = []
        for t in ids:
            t = int(t)
            if not 0 <= t < len(self.vocab):
                raise ValueError(f"token id {t} is outside the vocabulary [0, {len(self.vocab)})")
            w = self.vocab[t]
            if out and w in ATTACHED:
                out[-1] += w
            else:
                out.append(w)
        return " ".join(out)

    def to_hf(self):
        """This vocabulary as a Hugging Face ``PreTrainedTokenizerFast`` (what ``model.tokenizer`` holds): the same
        word splitter (:meth:`words`), every id as here, and ``decode`` attaching ``. , ; ? 's`` as :meth:`decode`."""
        from plm_interp.model.hf_tokenizer import word_level_tokenizer

        return word_level_tokenizer(self.vocab, bos_token="<BOS>", eos_token="<EOS>", pad_token="<PAD>",
                                    word_pattern=_WORD.pattern, attached=sorted(ATTACHED))

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON ``{"modulus", "tokens"}`` (the shipped ``vocab_<modulus>.json`` format)."""
        Path(path).write_text(json.dumps({"modulus": self.modulus, "tokens": self.vocab}, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        """Read a vocabulary file written by :meth:`save`."""
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(raw["tokens"], raw["modulus"])


@lru_cache(maxsize=8)
def get_tokenizer(modulus: int = 23, names: str = "all") -> Tokenizer:
    """The tokenizer for ``modulus``: read from the shipped ``vocab_<modulus>.json`` when present; for
    ``names="parseable"`` its prefix without the other 54 names' words (the vocabulary of older models)."""
    shipped = Path(__file__).with_name(f"vocab_{modulus}.json")
    full = Tokenizer.load(shipped) if shipped.exists() else Tokenizer(build_vocab(modulus), modulus)
    if names == "all":
        return full
    return Tokenizer(full.vocab[: len(build_vocab(modulus, names))], modulus)
