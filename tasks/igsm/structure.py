"""The structure graph: ``d`` layers of items with edges between consecutive layers (the paper's DrawAll).

Every edge ``(i, j) -> (i+1, k)`` is an *instance parameter* ``(0, i, j, k)``: "each <item j>'s <item k>".
An *abstract parameter* ``(1, i, j, k)`` (k > i) is "<item j>'s <category of layer k>": the total number of
layer-k things inside item j, a sum of products along the hierarchy that the problem never states. It exists when
item j reaches layer k; children that do not reach layer k contribute 0 and are left out of its formula.

Parameters are plain 4-tuples ``(kind, i, j, k)`` (kind 0 = instance, 1 = abstract) because they are hashed and
compared millions of times by the generator.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

Param = tuple[int, int, int, int]
INSTANCE, ABSTRACT = 0, 1


@dataclass(frozen=True)
class Shape:
    """Knobs of one structure graph: depth, width range, edge count and the add-vertex probability."""

    d: int
    w0: int
    w1: int
    e: int
    p: float


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
        (each pair listed instance first), over children x that reach layer k.
        """
        out: dict[Param, list[Param]] = {}
        for i in range(self.d - 2, -1, -1):  # bottom-up, so deeper abstracts exist before they are referenced
            for j in range(self.sizes[i]):
                kids = self.children[i][j]
                if not kids:
                    continue
                out[(1, i, j, i + 1)] = [(0, i, j, x) for x in kids]
                for k in range(i + 2, self.d):
                    deps: list[Param] = []
                    for x in kids:
                        if (1, i + 1, x, k) in out:
                            deps += [(0, i, j, x), (1, i + 1, x, k)]
                    if deps:
                        out[(1, i, j, k)] = deps
        return out

    def item(self, i: int, j: int) -> str:
        return self.names[i][j]

    def param_name(self, a: Param) -> str:
        """The solution-side name "X's Y" (the paper's ``get_ntn``)."""
        _, i, j, k = a
        other = self.names[i + 1][k] if a[0] == INSTANCE else self.categories[k]
        return f"{self.names[i][j]}'s {other}"


def sample_shape(rng: random.Random, op: int, ip_max: int) -> Shape:
    """Draw (d, w0, w1, e, p) as the authors' "light" generator does, given the op target.

    Depth and widths favour larger graphs for larger op (softmax over {2, 3, 4} centred at (op-1)/(ip_max-1));
    ``e`` is the min of two uniforms in [(d-1) w0, ip_max].
    """
    rel = (op - 1) / max(1, ip_max - 1)
    weights = [math.exp(-((rel - c) ** 2)) for c in (0.2, 0.5, 0.8)]
    d = rng.choices((2, 3, 4), weights)[0]
    t0, t1 = rng.choices((2, 3, 4), weights, k=2)
    w0, w1 = min(t0, t1), max(t0, t1)
    while (d - 1) * w0 > ip_max:  # keep the smallest graph of this shape within ip_max
        if w0 > 2:
            w0 -= 1
        else:
            d -= 1
    w1 = max(w0, w1)
    lo = (d - 1) * w0
    e = min(rng.randint(lo, ip_max), rng.randint(lo, ip_max))
    e = min(e, (d - 1) * w1 * w1)
    return Shape(d, w0, w1, e, rng.random())


def draw_structure(rng: random.Random, shape: Shape) -> Structure:
    """DrawAll: layer sizes in [w0, w1] grown until ``e`` edges fit; between consecutive layers a random minimal
    edge cover (every item has a parent and every non-bottom item a child, ``max(l_i, l_{i+1})`` edges), then
    the remaining edges uniformly among the absent ones.

    Covering the upper side too means every item reaches every lower layer, so an abstract parameter's formula
    names every child (a child without descendants would make "X's Category" depend on nothing through it).
    """
    d, w0, w1 = shape.d, shape.w0, shape.w1
    sizes = [w0] * d

    def need(sz: list[int]) -> int:
        return sum(max(sz[i], sz[i + 1]) for i in range(d - 1))

    def cap(sz: list[int]) -> int:
        return sum(sz[i] * sz[i + 1] for i in range(d - 1))

    e = max(shape.e, need(sizes))

    def grow() -> bool:
        pool = [i for i in range(d) if sizes[i] < w1 and need(sizes[:i] + [sizes[i] + 1] + sizes[i + 1:]) <= e]
        if not pool:
            return False
        sizes[rng.choice(pool)] += 1
        return True

    while True:
        if cap(sizes) < e:
            if not grow():
                e = cap(sizes)
                break
        elif need(sizes) == e or rng.random() >= shape.p or not grow():
            break
    children: list[list[list[int]]] = [[[] for _ in range(sizes[i])] for i in range(d - 1)]
    absent: list[tuple[int, int, int]] = []
    for i in range(d - 1):
        a, b = sizes[i], sizes[i + 1]
        cover: set[tuple[int, int]] = set()
        if a <= b:
            lower = rng.sample(range(b), b)
            cover = {(j, lower[j]) for j in range(a)} | {(rng.randrange(a), k) for k in lower[a:]}
        else:
            upper = rng.sample(range(a), a)
            cover = {(upper[k], k) for k in range(b)} | {(j, rng.randrange(b)) for j in upper[b:]}
        for j, k in cover:
            children[i][j].append(k)
        absent += [(i, j, k) for j in range(a) for k in range(b) if (j, k) not in cover]
    for i, j, k in rng.sample(absent, e - need(sizes)):
        children[i][j].append(k)
    for row in children:
        for kids in row:
            kids.sort()
    return Structure(sizes, children)
