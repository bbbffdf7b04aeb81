"""Generator settings: one small frozen dataclass, validated before any work starts.

The paper's two data sets are presets: ``med`` (ip <= 20 instance parameters, op <= 15 operations) and ``hard``
(ip <= 28, op <= 21); ``small`` (op <= 4, ip <= 6) and ``tiny``
(op <= 3, ip <= 4) are CPU-sized variants of ours; the shipped ``igsm-small`` model is trained on ``tiny``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

SHUFFLES = ("random", "topological", "none")
FORMATS = ("pq", "qp")
SPLITS = ("train", "test", "all")
LETTER_ORDERS = ("random", "sequential")
NAME_SETS = ("all", "parseable")
TEMPLATE_HASHES = ("ours", "authors")
GENERATORS = ("authors", "v1")


@dataclass(frozen=True)
class IGSMConfig:
    """How problems are drawn.

    * ``op_max`` / ``ip_max``: the op target is ``min(U[1, op_max], U[1, op_max])`` (the paper's distribution)
      unless ``op`` forces it; the number of instance parameters (structure edges) is at most ``ip_max``.
    * ``modulus``: all arithmetic is mod this (paper: 23); constants in the problem are in ``[0, modulus)``.
    * ``fmt``: ``"pq"`` puts the question after the problem, ``"qp"`` before.
    * ``shuffle``: problem sentences in uniformly random order (paper), a random topological order, or none.
    * ``split``/``train_buckets``: template-hash split; a problem is *train* when
      ``hash(solution template) mod hash_modulus < train_buckets`` (paper: mod 23, < 17).
    * ``template_hash``: ``"ours"`` (default: keeps the layers, so op = 1 problems spread over many templates;
      the shipped models' held-out sets use it) or ``"authors"`` (their sketch + sha256, :mod:`authors_split`;
      with ``train_buckets=16`` exactly their split, so a model can be tested on their held-out templates).
    * ``max_parents``: largest in-degree (counting the random-number vertex) of an instance parameter (paper: 4).
    * ``letters``: solution letters are drawn fresh from the first ``letters`` of a-z A-Z (paper: all 52). A
      smaller pool makes reusing a letter cost more loss, which is what a small model needs to learn to avoid it.
    * ``letter_order``: ``"random"`` (paper) draws each fresh letter uniformly from the unused ones;
      ``"sequential"`` names them a, b, c, ... in order of definition. Naming is not reasoning, but a random fresh
      letter is unpredictable, so the loss barely rewards avoiding used ones and a small model trained on CPU
      keeps reusing its favourite letter (docs/part2_analyses.md); sequential letters make the name predictable.
    * ``generator``: ``"authors"`` (their construction and distribution, :mod:`construct`) or ``"v1"`` (the first
      release's constructive generator, :mod:`legacy`: what models trained before this field saw).
    * ``names``: ``"all"`` 1,553 item names (the authors'); ``"parseable"`` the 1,499 without an apostrophe,
      template word or all-digit word (what models trained before this option saw; see :mod:`hierarchy`).
    """

    op_max: int = 15
    ip_max: int = 20
    op: int | None = None
    modulus: int = 23
    fmt: str = "pq"
    shuffle: str = "random"
    split: str = "train"
    hash_modulus: int = 23
    train_buckets: int = 17
    max_parents: int = 4
    letters: int = 52
    letter_order: str = "random"
    names: str = "all"
    template_hash: str = "ours"
    generator: str = "authors"

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"IGSMConfig field {field!r} = {getattr(self, field)!r}: {why}")

        for f in ("op_max", "ip_max", "modulus", "hash_modulus", "train_buckets", "max_parents", "letters"):
            if not isinstance(getattr(self, f), int) or isinstance(getattr(self, f), bool):
                raise bad(f, "must be an int")
        if self.op is not None and (not isinstance(self.op, int) or isinstance(self.op, bool) or self.op < 1):
            raise bad("op", "must be None or an int >= 1")
        if self.op_max < 1:
            raise bad("op_max", "must be >= 1")
        if self.ip_max < 2:
            raise bad("ip_max", "must be >= 2 (the smallest structure graph, d=2 layers of 2 items, has 2 edges)")
        if self.modulus < 2:
            raise bad("modulus", "must be >= 2")
        if self.modulus > 1000:
            raise bad("modulus", "must be <= 1000 (each residue is one vocabulary word)")
        if self.max_parents < 2:
            raise bad("max_parents", "must be >= 2")
        if not 1 <= self.letters <= 52:
            raise bad("letters", "must be in [1, 52] (a-z A-Z)")
        if self.letter_order not in LETTER_ORDERS:
            raise bad("letter_order", f"must be one of {LETTER_ORDERS}")
        if self.generator not in GENERATORS:
            raise bad("generator", f"must be one of {GENERATORS}")
        if self.generator == "v1" and self.template_hash != "ours":
            raise bad("template_hash", "the v1 generator draws names after the split check: use 'ours'")
        if self.template_hash not in TEMPLATE_HASHES:
            raise bad("template_hash", f"must be one of {TEMPLATE_HASHES}")
        if self.names not in NAME_SETS:
            raise bad("names", f"must be one of {NAME_SETS}")
        if self.fmt not in FORMATS:
            raise bad("fmt", f"must be one of {FORMATS}")
        if self.shuffle not in SHUFFLES:
            raise bad("shuffle", f"must be one of {SHUFFLES}")
        if self.split not in SPLITS:
            raise bad("split", f"must be one of {SPLITS}")
        if self.hash_modulus < 2:
            raise bad("hash_modulus", "must be >= 2")
        if not 0 < self.train_buckets < self.hash_modulus:
            raise bad("train_buckets", f"must be in [1, hash_modulus - 1] = [1, {self.hash_modulus - 1}]")
        target = self.op if self.op is not None else self.op_max
        field = "op" if self.op is not None else "op_max"
        bound = max_op_bound(self.ip_max, self.max_parents)
        if target > bound:
            raise bad(field, f"no problem with ip_max={self.ip_max} instance parameters reaches op={target} "
                             f"(upper bound {bound}); raise ip_max or lower {field}")
        if self.letters < target:
            # the binarised solution uses exactly one fresh letter per operation (see tasks.igsm.solution), so a
            # problem with op=k needs k letters; fewer would make the generator redraw forever
            raise bad("letters", f"a solution with {field}={target} operations needs {target} fresh letters; "
                                 f"use letters >= {target} or {field} <= {self.letters}")

    @property
    def target_op_max(self) -> int:
        """The largest op target a problem can be drawn with: ``op`` when forced, else ``op_max``."""
        return self.op if self.op is not None else self.op_max

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (the ``config`` of an iGSM task spec)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "IGSMConfig":
        """Inverse of :meth:`to_dict`; unknown fields are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"IGSMConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def with_(self, **kw: Any) -> "IGSMConfig":
        """A validated copy with the fields in ``kw`` changed (how keyword overrides refine a preset)."""
        return replace(self, **kw)


def max_op_bound(ip_max: int, max_parents: int = 4) -> int:
    """A safe upper bound on the op a problem with at most ``ip_max`` structure edges can have.

    Each instance parameter contributes at most ``max_parents - 1``. An item with ``c`` children gives
    "X's <next category>" (op <= c) and, per deeper layer, a sum of ``c`` products (op <= 2c - 1 < 2c), so the
    abstract parameters of a graph with ``e`` edges and ``d`` layers contribute at most ``e (2d - 3)``. Layers
    hold at least 2 items, so ``e >= 2 (d - 1)``: ``d <= min(4, 1 + e // 2)``. (op_max 15 with ip_max 2 is
    refused: at most 8.) The generator raises its own error if a forced op still cannot be realised.
    """
    d = min(4, 1 + ip_max // 2)
    return (max_parents - 1) * ip_max + (2 * d - 3) * ip_max


PRESETS: dict[str, IGSMConfig] = {
    "med": IGSMConfig(op_max=15, ip_max=20),
    "hard": IGSMConfig(op_max=21, ip_max=28),
    "small": IGSMConfig(op_max=4, ip_max=6),
    "tiny": IGSMConfig(op_max=3, ip_max=4),
}
