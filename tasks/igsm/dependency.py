"""The dependency graph over parameters: formulas, values and the exact op count.

Vertices are the instance parameters, the abstract parameters and one random-number vertex RNG. An instance
parameter depends on 1..``max_parents`` vertices (RNG counts as one: "equals 5 more than ..."); an abstract
parameter depends on its structural dependencies (see :mod:`structure`). ``op(a) = max(1, in-degree - 1)`` and a
problem's op is the sum of ``op`` over its *necessary* parameters (the query and its ancestors). The graphs are
drawn by :mod:`construct` (the authors' algorithm).
"""
from __future__ import annotations

from dataclasses import dataclass

from tasks.igsm.structure import INSTANCE, Param, Structure


@dataclass(frozen=True)
class Formula:
    """How an instance parameter is stated: ``const <const_op> combine(parents)``.

    ``combine`` is ``"sum"`` or ``"diff"`` (diff only with exactly two parents); ``const_op`` is ``"add"``,
    ``"mul"`` or ``None`` (with ``const`` set and no parents: the parameter *is* the constant).
    """

    parents: tuple[Param, ...]
    combine: str = "sum"
    const: int | None = None
    const_op: str | None = None

    @property
    def in_degree(self) -> int:
        return len(self.parents) + (self.const is not None)

    def evaluate(self, values: dict[Param, int], modulus: int) -> int:
        vs = [values[p] for p in self.parents]
        if not vs:
            return self.const % modulus  # type: ignore[operator]
        base = vs[0] - vs[1] if self.combine == "diff" else sum(vs)
        if self.const_op == "add":
            base = self.const + base  # type: ignore[operator]
        elif self.const_op == "mul":
            base = self.const * base  # type: ignore[operator]
        return base % modulus


@dataclass
class DepGraph:
    """A full dependency graph with values.

    ``order``: the necessary parameters in solution order (query last); ``topo``: every parameter in a
    topological order; ``formulas``: every instance parameter; ``abstract``: every abstract parameter's deps.
    """

    structure: Structure
    formulas: dict[Param, Formula]
    abstract: dict[Param, list[Param]]
    order: list[Param]
    topo: list[Param]
    values: dict[Param, int]
    modulus: int

    @property
    def query(self) -> Param:
        return self.order[-1]

    def parents(self, a: Param) -> tuple[Param, ...]:
        """True non-RNG parents of ``a``."""
        return self.formulas[a].parents if a[0] == INSTANCE else tuple(self.abstract[a])

    def op(self, a: Param) -> int:
        deg = self.formulas[a].in_degree if a[0] == INSTANCE else len(self.abstract[a])
        return max(1, deg - 1)

    @property
    def n_op(self) -> int:
        return sum(self.op(a) for a in self.order)

    def ancestors(self, a: Param) -> set[Param]:
        seen: set[Param] = set()
        stack = [a]
        while stack:
            for p in self.parents(stack.pop()):
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return seen


def evaluate(topo: list[Param], formulas: dict[Param, Formula], abstract: dict[Param, list[Param]],
             modulus: int) -> dict[Param, int]:
    """Every parameter's value, in ``topo`` order (dependencies first): an instance parameter by its formula, a
    category total (layer + 1) as the sum of its children, a deeper total as sum of count x per-item total.

    One function for the generator and the text reader, so both give a parameter the same value."""
    values: dict[Param, int] = {}
    for a in topo:
        if a[0] == INSTANCE:
            values[a] = formulas[a].evaluate(values, modulus)
        elif a[3] == a[1] + 1:
            values[a] = sum(values[x] for x in abstract[a]) % modulus
        else:
            ds = abstract[a]
            values[a] = sum(values[ds[t]] * values[ds[t + 1]] for t in range(0, len(ds), 2)) % modulus
    return values
