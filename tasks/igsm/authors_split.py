"""The authors' train/test split: their solution-template hash and bucket rule (facebookresearch/iGSM).

Their ``Problem.to_hash`` turns the solution text into a *sketch* and hashes it (``tools.tools.to_sketch`` and
``to_hash``): every parameter name "X's Y" becomes ``Inst`` (instance parameters, replaced first) or ``Inter``
(abstract ones), every number 22, 21, ..., 1 becomes ``0`` (string replacement, largest first, always for mod 23),
";" becomes ".", and the letters are renamed a, b, c, ... in order of first appearance. The bucket is
``int(sha256(sketch)) mod 23``; their code trains on buckets 0..15 and tests on 16..22 (``const/params.py``:
``train_bin``/``test_bin``), i.e. ``IGSMConfig(template_hash="authors", train_buckets=16)``.

Their sketch keeps no item or layer information, so all constant-only op=1 problems share one template (and one
bucket); our own hash (:func:`tasks.igsm.solution.template_hash`) keeps the layers and stays the default, so the
shipped models' held-out sets keep their meaning.
"""
from __future__ import annotations

import hashlib
import string

from tasks.igsm.structure import Structure

SYMBOLS = tuple(string.ascii_lowercase + string.ascii_uppercase)
_SYMBOL_SET = frozenset(SYMBOLS)
AUTHORS_MOD = 23


def _param_names(st: Structure) -> tuple[list[str], list[str]]:
    """Instance and abstract parameter names in the authors' ``all_param`` order (every possible edge first)."""
    d, sz, n = st.d, st.sizes, st.names
    inst = [f"{n[i][j]}'s {n[i + 1][k]}" for i in range(d - 1) for j in range(sz[i]) for k in range(sz[i + 1])]
    inter = [f"{n[i][j]}'s {st.categories[k]}" for i in range(d - 1) for j in range(sz[i]) for k in range(i + 1, d)]
    return inst, inter


def sketch(st: Structure, solution_sentences: list[str]) -> str:
    """The authors' template string of a solution (see module docstring)."""
    sol = " " + ". ".join(solution_sentences) + "."
    inst, inter = _param_names(st)
    for name in inst:
        sol = sol.replace(name, "Inst")
    for name in inter:
        sol = sol.replace(name, "Inter")
    for v in range(AUTHORS_MOD - 1, 0, -1):
        sol = sol.replace(str(v), "0")
    groups = [s.split(" ") for s in sol.replace(";", ".").split(". ")]
    rename: dict[str, str] = {}
    for g in groups:
        for w in g:
            if w in _SYMBOL_SET and w not in rename:
                rename[w] = SYMBOLS[len(rename)]
    return ". ".join(" ".join(rename.get(w, w) for w in g) for g in groups)


def authors_bucket(st: Structure, solution_sentences: list[str], modulus: int = AUTHORS_MOD) -> int:
    """``int(sha256(sketch), 16) mod modulus``: the authors' template bucket of a solution."""
    digest = hashlib.sha256(sketch(st, solution_sentences).encode()).hexdigest()
    return int(digest, 16) % modulus
