"""Token ids of the CFG task: four fixed special ids, then the terminals.

======  ====  ===========================================================
 id     name  use
======  ====  ===========================================================
 0      PAD   padding after EOS in eval tensors (never trained on)
 1      BOS   starts every string in the packed stream
 2      EOS   ends every string
 3      MASK  masked-LM input (the encoder)
 4+t    --    terminal ``t`` (``t = 0..T-1``; for an implicit grammar: observable token ``t``)
======  ====  ===========================================================

The specials are fixed for every grammar (so analyses can hard-code them); terminal ids are shifted by 4. (The
authors' files use terminals 1..T, EOS = T+1, MASK = T+2 and no BOS; :meth:`CFGTokenizer.from_authors_id` maps.)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

PAD, BOS, EOS, MASK = 0, 1, 2, 3
N_SPECIAL = 4
SPECIAL_NAMES = ("<pad>", "<bos>", "<eos>", "<mask>")


class CFGTokenizer:
    """Maps terminal ids <-> token ids; ``d_vocab = 4 + T``.

    >>> tok = CFGTokenizer(["a", "b", "c"])
    >>> tok.encode([0, 2], bos=True, eos=True).tolist(), tok.d_vocab
    ([1, 4, 6, 2], 7)
    >>> tok.to_text([1, 4, 6, 2])
    '<bos> a c <eos>'
    """

    PAD, BOS, EOS, MASK = PAD, BOS, EOS, MASK

    def __init__(self, terminals: Sequence[str]):
        self.terminals = list(terminals)
        self.names = list(SPECIAL_NAMES) + self.terminals

    @property
    def d_vocab(self) -> int:
        """``4 + T``: the four special ids, then one id per terminal."""
        return N_SPECIAL + len(self.terminals)

    def encode(self, terminal_ids, bos: bool = False, eos: bool = False) -> np.ndarray:
        """Token ids of ``terminal_ids`` (shifted by 4), optionally wrapped in BOS/EOS; bad terminal ids raise."""
        ids = np.asarray(terminal_ids, dtype=np.int64) + N_SPECIAL
        if len(ids) and (ids.min() < N_SPECIAL or ids.max() >= self.d_vocab):
            raise ValueError(f"terminal ids must be in 0..{len(self.terminals) - 1}; got {np.asarray(terminal_ids)}")
        return np.concatenate([[BOS]] * bos + [ids] + [[EOS]] * eos).astype(np.int64)

    def decode(self, token_ids) -> np.ndarray:
        """Terminal ids of the terminal tokens in ``token_ids`` (special tokens dropped)."""
        ids = np.asarray(token_ids, dtype=np.int64)
        return ids[ids >= N_SPECIAL] - N_SPECIAL

    def to_text(self, token_ids) -> str:
        """``token_ids`` as space-separated names (specials as ``<bos>`` etc.), for reading samples and outputs."""
        return " ".join(self.names[int(i)] for i in np.asarray(token_ids).reshape(-1))

    def to_hf(self):
        """This vocabulary as a Hugging Face ``PreTrainedTokenizerFast`` (what ``model.tokenizer`` holds): text is
        space-separated token names (``"<bos> a c b"``), every id as here, ``decode`` is :meth:`to_text`."""
        from plm_interp.model.hf_tokenizer import word_level_tokenizer

        return word_level_tokenizer(self.names, bos_token=SPECIAL_NAMES[BOS], eos_token=SPECIAL_NAMES[EOS],
                                    pad_token=SPECIAL_NAMES[PAD], mask_token=SPECIAL_NAMES[MASK])

    def from_authors_id(self, authors_id: int) -> int:
        """Our token id for a token id of the authors' data files."""
        t = len(self.terminals)
        table = {t + 1: EOS, t + 2: MASK}
        if 1 <= authors_id <= t:
            return authors_id - 1 + N_SPECIAL
        if authors_id in table:
            return table[authors_id]
        raise ValueError(f"authors' token id {authors_id} is not a terminal, EOS or MASK of a {t}-terminal grammar")
