"""The shortest solution as a list of steps, binarised exactly as the authors' ``to_sol`` does.

One step per necessary parameter, in solution order, each with a fresh letter. Multi-operand expressions go
through temporaries with their own fresh letters: ``a + b + c`` becomes ``R = a + b``, then ``so g = R + c``;
an abstract parameter is a sum of products ``T1 = a * b; T2 = c * d; so g = T1 + T2``; a constant combined with a
multi-parent sum is ``R = a + b; so g = 5 * R``. :func:`template_hash` fingerprints the step *shapes* (no names,
no letters, no numbers) for the train/test split.
"""
from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass, field

from tasks.igsm.dependency import DepGraph
from tasks.igsm.structure import INSTANCE, Param

LETTERS = tuple(string.ascii_lowercase + string.ascii_uppercase)
OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}

Term = str | int  # a letter, or a literal constant


class OutOfLetters(RuntimeError):
    """The solution needs more than 52 fresh letters; the generator redraws."""


@dataclass
class Expr:
    """``operands[0] [op operands[1]]`` with the operands' values and the result, all reduced mod the modulus."""

    operands: list[Term]
    op: str | None
    values: list[int]
    value: int


@dataclass
class Step:
    """"Define <param> as <letter>; <temps>; so <letter> = <final>." (``back=True``: "Define <param> as [BACK].")"""

    param: Param
    letter: str | None
    temps: list[tuple[str, Expr]] = field(default_factory=list)
    final: Expr | None = None
    back: bool = False

    @property
    def value(self) -> int:
        assert self.final is not None
        return self.final.value

    @property
    def n_binary_ops(self) -> int:
        return sum(1 for _, e in self.temps if e.op) + (1 if self.final and self.final.op else 0)


class _Builder:
    def __init__(self, g: DepGraph, rng: random.Random, letters: int = len(LETTERS), order: str = "random",
                 shuffle: bool = False):
        self.g, self.m = g, g.modulus
        self.pool, self.n_letters = list(LETTERS[:letters]), letters
        self.rng = rng if order == "random" and not shuffle else None
        if order == "random" and shuffle:  # the first release's draw (same distribution, other random stream)
            rng.shuffle(self.pool)
        elif order != "random":  # "sequential": popped from the end, so a, b, c, ...
            self.pool.reverse()
        self.val: dict[str, int] = {}

    def fresh(self) -> str:
        """A letter not used yet: uniform among the unused ones (the authors' ``get_symbol``), or the next one."""
        if not self.pool:
            raise OutOfLetters(f"solution needs more than {self.n_letters} letters")
        if self.rng is not None:  # swap a uniform unused letter to the end: one draw per letter, not a shuffle
            t = int(self.rng.random() * len(self.pool))
            self.pool[t], self.pool[-1] = self.pool[-1], self.pool[t]
        return self.pool.pop()

    def tv(self, t: Term) -> int:
        return self.val[t] if isinstance(t, str) else t % self.m

    def expr(self, operands: list[Term], op: str | None) -> Expr:
        vs = [self.tv(t) for t in operands]
        v = OPS[op](vs[0], vs[1]) % self.m if op else vs[0]
        return Expr(operands, op, vs, v)

    def temp(self, temps: list, a: Term, op: str, b: Term) -> str:
        t = self.fresh()
        e = self.expr([a, b], op)
        self.val[t] = e.value
        temps.append((t, e))
        return t

    def chain(self, temps: list, terms: list[Term], op: str, keep_last: bool) -> tuple[list[Term], str | None]:
        """Left fold ``terms`` with ``op`` through temporaries; keep the last operation for the final part."""
        if len(terms) == 1:
            return [terms[0]], None
        acc = terms[0]
        for t in terms[1:-1]:
            acc = self.temp(temps, acc, op, t)
        if keep_last:
            return [acc, terms[-1]], op
        return [self.temp(temps, acc, op, terms[-1])], None

    def step(self, a: Param, letters: dict[Param, str]) -> Step:
        letter = self.fresh()
        temps: list[tuple[str, Expr]] = []
        if a[0] == INSTANCE:
            f = self.g.formulas[a]
            refs: list[Term] = [letters[p] for p in f.parents]
            if not refs:
                final = self.expr([f.const], None)  # type: ignore[list-item]
            else:
                op = "-" if f.combine == "diff" else "+"
                if f.const_op is None:
                    final = self.expr(*self.chain(temps, refs, op, keep_last=True))
                else:
                    (base,), _ = self.chain(temps, refs, op, keep_last=False)
                    final = self.expr([f.const, base], "+" if f.const_op == "add" else "*")  # type: ignore[list-item]
        else:
            deps = self.g.abstract[a]
            if not deps:  # an item without children: "so t = 0"
                final = self.expr([0], None)
            elif a[3] == a[1] + 1:
                final = self.expr(*self.chain(temps, [letters[x] for x in deps], "+", keep_last=True))
            elif len(deps) == 2:
                final = self.expr([letters[deps[0]], letters[deps[1]]], "*")
            else:  # sum of products, each product written just before the sum that uses it (authors' order)
                acc = self.temp(temps, letters[deps[0]], "*", letters[deps[1]])
                for t in range(2, len(deps), 2):
                    pr = self.temp(temps, letters[deps[t]], "*", letters[deps[t + 1]])
                    if t == len(deps) - 2:
                        final = self.expr([acc, pr], "+")
                    else:
                        acc = self.temp(temps, acc, "+", pr)
        self.val[letter] = final.value
        if final.value != self.g.values[a]:
            raise AssertionError(f"solution value {final.value} != graph value {self.g.values[a]} for {a}")
        letters[a] = letter
        return Step(a, letter, temps, final)


def build_solution(g: DepGraph, rng: random.Random, order: list[Param] | None = None,
                   letters: int = len(LETTERS), letter_order: str = "random", shuffle: bool = False) -> list[Step]:
    """Steps for ``order`` (default: the graph's necessary order), with fresh letters from the first ``letters``
    of :data:`LETTERS`, drawn at random or in order (``letter_order``; ``shuffle``: as the first release did)."""
    b = _Builder(g, rng, letters, letter_order, shuffle)
    letters: dict[Param, str] = {}
    return [b.step(a, letters) for a in (order if order is not None else g.order)]


def template_hash(steps: list[Step], g: DepGraph, modulus: int = 23) -> int:
    """The solution template's bucket in ``[0, modulus)``: a stable hash of the step shapes.

    The template keeps the structure graph's layer sizes and, per step, the parameter's kind and layers and
    each binary operation with its operands as (earlier letter index | literal); names, letter identities,
    item indices and numbers are dropped. (The layers make even op = 1 problems spread over many templates.)
    """
    index: dict[str, int] = {}
    parts: list[str] = []

    def ref(t: Term) -> str:
        return f"L{len(index) - index[t]}" if isinstance(t, str) else "N"

    for s in steps:
        body = []
        for name, e in s.temps:
            body.append(f"{ref(e.operands[0])}{e.op}{ref(e.operands[1])}")
            index[name] = len(index)
        assert s.final is not None
        fin = ref(s.final.operands[0]) + (f"{s.final.op}{ref(s.final.operands[1])}" if s.final.op else "")
        index[s.letter] = len(index)  # type: ignore[index]
        parts.append(f"{s.param[0]}{s.param[1]}{s.param[3]}:{','.join(body)}|{fin}")
    key = f"{g.structure.sizes}/" + ";".join(parts)
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % modulus
