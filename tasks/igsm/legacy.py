"""The generator as it was before ``construct`` (kept so models trained on it are measured on their own data).

A task spec written before the ``names`` field existed (``IGSMTask.from_spec``) gets ``generator="v1"``: the
constructive generator of the first release, whose structures give every upper item a child and whose abstract
parameters leave out children that do not reach the layer. It is *not* the authors' distribution (docs/igsm.md,
"Faithfulness"); it exists so the shipped models' card figures stay reproducible, bit for bit.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tasks.igsm.dependency import DepGraph, Formula
from tasks.igsm.structure import ABSTRACT, INSTANCE, Param, Structure


@dataclass(frozen=True)
class Shape:
    """Knobs of one structure graph: depth, width range, edge count and the add-vertex probability."""

    d: int
    w0: int
    w1: int
    e: int
    p: float


def abstract_deps_v1(st: Structure) -> dict[Param, list[Param]]:
    """v1 abstract parameters: only for items with children, over the children that reach layer k."""
    out: dict[Param, list[Param]] = {}
    for i in range(st.d - 2, -1, -1):
        for j in range(st.sizes[i]):
            kids = st.children[i][j]
            if not kids:
                continue
            out[(1, i, j, i + 1)] = [(0, i, j, x) for x in kids]
            for k in range(i + 2, st.d):
                deps: list[Param] = []
                for x in kids:
                    if (1, i + 1, x, k) in out:
                        deps += [(0, i, j, x), (1, i + 1, x, k)]
                if deps:
                    out[(1, i, j, k)] = deps
    return out


def sample_layers_v1(hierarchy, rng: random.Random, sizes: list[int]) -> tuple[list[str], list[list[str]]]:
    """v1 names: item names distinct in the whole problem."""
    d = len(sizes)
    h = hierarchy.hierarchies[rng.randrange(len(hierarchy.hierarchies))]
    top = rng.randrange(len(h) - d + 1)
    cats = list(h[top : top + d])
    used: set[str] = set(cats)
    layers: list[list[str]] = []
    for cat, n in zip(cats, sizes):
        subs = hierarchy.items[cat]
        pool = [x for x in subs[rng.randrange(len(subs))] if x not in used]
        if len(pool) < n:
            pool = [x for sub in subs for x in sub if x not in used]
        names = rng.sample(pool, n)
        used.update(names)
        layers.append(names)
    return cats, layers


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


def _make_formula(rng: random.Random, parents: list[Param], use_const: bool, modulus: int) -> Formula:
    if not parents:
        return Formula((), "sum", rng.randrange(modulus), None)
    combine = "diff" if len(parents) == 2 and rng.random() < 0.5 else "sum"
    if not use_const:
        return Formula(tuple(parents), combine)
    if rng.random() < 0.5:
        return Formula(tuple(parents), combine, rng.randrange(modulus), "add")
    return Formula(tuple(parents), combine, rng.randrange(1, modulus), "mul")


def build_dependency(
    rng: random.Random, st: Structure, s: int, n: int, m: int, modulus: int, max_parents: int = 4
) -> DepGraph | None:
    """One attempt at a dependency graph whose necessary parameters have exactly ``s`` ops (see module doc)."""
    P = max_parents
    abs_deps = abstract_deps_v1(st)
    inst = st.instance_params()
    abs_op = {a: max(1, len(ds) - 1) for a, ds in abs_deps.items()}
    closure: dict[Param, set[Param]] = {}
    for a, ds in abs_deps.items():  # abstract_deps is bottom-up: deeper closures exist already
        c = {a}
        for x in ds:
            c |= closure[x] if x[0] == ABSTRACT else {x}
        closure[a] = c

    # 1. selection
    chosen: set[Param] = set()
    cost = 0
    cands = list(abs_deps)
    rng.shuffle(cands)
    for a in cands:
        if a in chosen:
            continue
        new = closure[a] - chosen
        dc = sum(abs_op[x] if x[0] == ABSTRACT else 1 for x in new)
        if cost + dc <= n:
            chosen |= new
            cost += dc
    free = [x for x in inst if x not in chosen]
    rng.shuffle(free)
    while (cost < m or not chosen) and free:
        chosen.add(free.pop())
        cost += 1

    # 2. backward order from the query
    kids: dict[Param, int] = {u: 0 for u in chosen}
    for a in chosen:
        if a[0] == ABSTRACT:
            for x in abs_deps[a]:
                kids[x] += 1
    has_kid = {u: kids[u] > 0 for u in chosen}
    available = [u for u in chosen if kids[u] == 0]
    available.sort()
    rev: list[Param] = []
    mand: dict[Param, list[Param]] = {}
    while available:
        open_slots = [v for v in mand if len(mand[v]) < P]
        pool = available if (open_slots or not rev) else [u for u in available if has_kid[u]]
        if not pool:
            return None
        u = pool[rng.randrange(len(pool))]
        available.remove(u)
        if rev and not has_kid[u]:
            least = min(len(mand[v]) for v in open_slots)
            tight = [v for v in open_slots if len(mand[v]) == least]
            mand[tight[rng.randrange(len(tight))]].append(u)
        rev.append(u)
        if u[0] == INSTANCE:
            mand[u] = []
        else:
            for x in abs_deps[u]:
                kids[x] -= 1
                if kids[x] == 0:
                    available.append(x)
    order = rev[::-1]
    pos = {u: t for t, u in enumerate(order)}

    # 3. exact op budget over the necessary instance parameters
    target = s - sum(abs_op[a] for a in order if a[0] == ABSTRACT)
    lo = {v: max(1, len(mand[v]) - 1) for v in mand}
    hi = {v: max(1, min(pos[v] + 1, P) - 1) for v in mand}
    if not sum(lo.values()) <= target <= sum(hi.values()):
        return None
    ops = dict(lo)
    room = [v for v in order if v in mand and ops[v] < hi[v]]
    for _ in range(target - sum(lo.values())):
        t = rng.randrange(len(room))
        v = room[t]
        ops[v] += 1
        if ops[v] == hi[v]:
            room[t] = room[-1]
            room.pop()
    formulas: dict[Param, Formula] = {}
    for v in order:
        if v[0] != INSTANCE:
            continue
        pmin, avail = len(mand[v]), pos[v]
        options = [
            (p, r)
            for p in range(pmin, min(avail, P) + 1)
            for r in (0, 1)
            if 1 <= p + r <= P and max(1, p + r - 1) == ops[v]
        ]
        p, r = options[rng.randrange(len(options))]
        mset = set(mand[v])
        extra = [x for x in order[:avail] if x not in mset]
        parents = mand[v] + rng.sample(extra, p - pmin)
        rng.shuffle(parents)
        formulas[v] = _make_formula(rng, parents, bool(r), modulus)

    # 4. unnecessary parameters, and a topological order of everything
    topo = list(order)
    avail_list = list(order)
    avail_set = set(order)
    pending_abs = [a for a in abs_deps if a not in avail_set]  # bottom-up order

    def release_abstracts() -> None:
        still = []
        for a in pending_abs:
            if all(x in avail_set for x in abs_deps[a]):
                avail_set.add(a)
                avail_list.append(a)
                topo.append(a)
            else:
                still.append(a)
        pending_abs[:] = still

    release_abstracts()
    independent: list[Param] = []
    indep_set: set[Param] = set()
    rest = [x for x in inst if x not in pos]
    rng.shuffle(rest)
    for u in rest:
        pool = independent if rng.random() < 0.5 else avail_list
        n_sample, full = 1, len(pool) + 1
        cap = min(full, P)
        while n_sample < cap and rng.random() > 0.5:
            n_sample += 1
        if n_sample == full:
            parents, use_const = list(pool), True
        else:
            use_const = rng.random() < 0.5
            parents = rng.sample(pool, n_sample - use_const)
            if not parents:
                use_const = True
        formulas[u] = _make_formula(rng, parents, use_const, modulus)
        if all(x in indep_set for x in parents):
            independent.append(u)
            indep_set.add(u)
        avail_list.append(u)
        avail_set.add(u)
        topo.append(u)
        release_abstracts()

    values: dict[Param, int] = {}
    for a in topo:
        if a[0] == INSTANCE:
            values[a] = formulas[a].evaluate(values, modulus)
        else:
            ds = abs_deps[a]
            if a[3] == a[1] + 1:
                values[a] = sum(values[x] for x in ds) % modulus
            else:
                values[a] = sum(values[ds[t]] * values[ds[t + 1]] for t in range(0, len(ds), 2)) % modulus
    return DepGraph(st, formulas, abs_deps, order, topo, values, modulus)
