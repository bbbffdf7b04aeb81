"""The dependency graph over parameters, built to hit an exact op count.

Vertices are the instance parameters, the abstract parameters and one random-number vertex RNG. An instance
parameter depends on 1..``max_parents`` vertices (RNG counts as one: "equals 5 more than ..."); an abstract
parameter depends on its structural dependencies (see :mod:`structure`). ``op(a) = max(1, in-degree - 1)`` and a
problem's op is the sum of ``op`` over its *necessary* parameters (the query and its ancestors).

Construction (ours, constructive where the authors' generator rejection-samples, same ingredients and knobs):

1. choose abstract parameters (with their closure) worth about ``n`` ops, then free instance parameters until
   the minimal cost reaches ``m`` (the authors' ``n <= m <= s`` scheme);
2. order them backwards from the query; each parameter that no later parameter uses structurally is attached
   as a parent to a later instance parameter, so every chosen parameter is an ancestor of the query;
3. give every necessary instance parameter an op in its feasible interval so that the sum is exactly ``s``,
   then realise it with extra parents from earlier parameters and/or RNG;
4. the remaining instance parameters become *unnecessary* ones whose parents are RNG and earlier parameters
   (necessary ones included, so they may depend on the query), exactly as the authors' ``design_unused``.

A failed attempt returns ``None`` and the caller redraws; with the paper's settings few attempts fail.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from tasks.igsm.structure import ABSTRACT, INSTANCE, Param, Structure


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
    abs_deps = st.abstract_deps()
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
