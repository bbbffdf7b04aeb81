"""The structure graph: ``d`` layers of items with edges between consecutive layers (drawn by :mod:`construct`).

Every edge ``(i, j) -> (i+1, k)`` is an *instance parameter* ``(0, i, j, k)``: "each <item j>'s <item k>".
An *abstract parameter* ``(1, i, j, k)`` (k > i) is "<item j>'s <category of layer k>": the total number of
layer-k things inside item j, a sum of products along the hierarchy that the problem never states. It exists when
item j is above layer k; an item without children has total 0, as in the authors' generator.

Parameters are plain 4-tuples ``(kind, i, j, k)`` (kind 0 = instance, 1 = abstract) because they are hashed and
compared millions of times by the generator.
"""
from __future__ import annotations

from dataclasses import dataclass, field

Param = tuple[int, int, int, int]
INSTANCE, ABSTRACT = 0, 1


@dataclass
class Structure:
    """A drawn structure graph with its names. ``children[i][j]`` lists item j's children in layer i+1."""

    sizes: list[int]
    children: list[list[list[int]]]
    categories: list[str] = field(default_factory=list)
    names: list[list[str]] = field(default_factory=list)

    @property
    def d(self) -> int:
        return len(self.sizes)

    def instance_params(self) -> list[Param]:
        return [(0, i, j, k) for i in range(self.d - 1) for j in range(self.sizes[i]) for k in self.children[i][j]]

    def abstract_deps(self) -> dict[Param, list[Param]]:
        """Every abstract parameter with its structural dependencies, in the order its formula uses them.

        ``(1, i, j, i+1)`` = sum of ``(0, i, j, x)``; ``(1, i, j, k)`` = sum of ``(0, i, j, x) * (1, i+1, x, k)``
        (each pair listed instance first) over *all* children x, as the authors' generator defines them: an item
        without children has total 0 (no dependencies), and so has a child that reaches no layer k.
        """
        out: dict[Param, list[Param]] = {}
        for i in range(self.d - 2, -1, -1):  # bottom-up, so deeper abstracts exist before they are referenced
            for j in range(self.sizes[i]):
                kids = self.children[i][j]
                out[(1, i, j, i + 1)] = [(0, i, j, x) for x in kids]
                for k in range(i + 2, self.d):
                    out[(1, i, j, k)] = [y for x in kids for y in ((0, i, j, x), (1, i + 1, x, k))]
        return out

    def item(self, i: int, j: int) -> str:
        return self.names[i][j]

    def param_name(self, a: Param) -> str:
        """The solution-side name "X's Y" (the paper's ``get_ntn``)."""
        _, i, j, k = a
        other = self.names[i + 1][k] if a[0] == INSTANCE else self.categories[k]
        return f"{self.names[i][j]}'s {other}"
