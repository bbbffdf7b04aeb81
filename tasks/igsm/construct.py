"""The authors' construction of one problem graph (facebookresearch/iGSM, ``math_gen/graph_gen.py``), re-written
without networkx so it runs many times faster while drawing from the same distribution.

Steps, as in the authors' ``Problem.gen`` with the "light" parameters of ``IdGen``:

1. :func:`draw_shape` (``gen_param_light`` given the op target ``s``): ``n = max(U[1,s], U[1,s])``,
   ``m = U[n, s]``, depth and widths from a softmax centred on ``(s-1)/(ip_max-1)``,
   ``e = min(U[(d-1) w0, ip_max], U[(d-1) w0, ip_max])``;
2. :func:`draw_structure` (``init``): layer sizes grown from ``w0`` with probability ``p`` until ``e`` edges fit;
   every lower item gets one random parent, then the other edges uniformly. Upper items may have *no children*:
   "X's <Category>" is then 0 ("so t = 0");
3. ``choose_param`` / ``try_inter``: abstract parameters (with their closure) worth about ``n`` ops, then free
   instance parameters until the minimal cost reaches ``m``;
4. ``reasonable_sort``: a backward order from the query that adds one dependency edge per instance parameter
   (bias ``p1`` towards abstract ones and ones not yet pending) so every chosen parameter is needed;
5. ``design``: extra parents so the op count is ``s``; ``fill_all`` / ``design_unused``: the remaining edges
   become unnecessary parameters that depend on RNG, on independent ones or on anything known (``p3 = 1/2``).

The caller (:func:`tasks.igsm.generator.generate`) keeps a draw only when its op equals the target, exactly as
the authors' ``gen_prob`` does. MIT License, Copyright (c) Meta Platforms, Inc. and affiliates (algorithm).
"""
from __future__ import annotations

import math
import random

from tasks.igsm.dependency import DepGraph, Formula, evaluate
from tasks.igsm.structure import ABSTRACT, INSTANCE, Param, Structure

RNG: Param = (-1, 0, 0, 0)
TRIES = 1000  # the authors' try_num: structure redraws per parameter draw


def _below(rng: random.Random, n: int) -> int:
    """Uniform in ``[0, n)`` from one ``random()`` call: several times cheaper than ``randrange`` (bias < 2^-50),
    and the generator makes about two hundred such draws per problem."""
    return int(rng.random() * n)


def _pick(rng: random.Random, seq):
    return seq[int(rng.random() * len(seq))]


def _sample(rng: random.Random, seq, k: int) -> list:
    """``k`` distinct elements in random order (a partial Fisher-Yates shuffle on a copy)."""
    pool = list(seq)
    n = len(pool)
    if not 0 <= k <= n:
        raise ValueError(f"sample of {k} from {n}")
    for t in range(k):
        u = t + int(rng.random() * (n - t))
        pool[t], pool[u] = pool[u], pool[t]
    return pool[:k]


def _softmax_choice(rng: random.Random, items, weights):
    top = max(weights)
    return rng.choices(items, [math.exp(w - top) for w in weights])[0]


def draw_shape(rng: random.Random, s: int, ip_max: int):
    """``(n, m, d, w0, w1, e, p)`` for op target ``s`` (the authors' ``gen_param_light`` with ``op`` set)."""
    n = max(rng.randint(1, s), rng.randint(1, s))
    m = rng.randint(n, s)
    rel = (s - 1) / (ip_max - 1)
    w = [-((rel - c) ** 2) for c in (0.2, 0.5, 0.8)]
    d = _softmax_choice(rng, (2, 3, 4), w)
    t0, t1 = _softmax_choice(rng, (2, 3, 4), w), _softmax_choice(rng, (2, 3, 4), w)
    w0, w1 = min(t0, t1), max(t0, t1)
    p = rng.random()
    lo = (d - 1) * w0
    if lo > ip_max:  # the authors' randint raises here and the draw is dropped (only our small presets)
        return None
    e = min(rng.randint(lo, ip_max), rng.randint(lo, ip_max))
    e = min(e, (d - 1) * w1 * w1)
    return n, m, d, w0, w1, e, p


def draw_structure(rng: random.Random, d: int, w0: int, w1: int, e: int, p: float):
    """Layer sizes and edges (``init``); returns the structure and the edge list in the authors' order."""
    sizes = [w0] * d
    while True:
        max_v = sum(sizes[i] * sizes[i + 1] for i in range(d - 1))
        min_v = sum(sizes[1:])
        if max_v < e or (min_v != e and rng.random() < p):
            pool = [i for i in range(d) if sizes[i] < w1]
            if not pool:
                break
            sizes[_pick(rng, pool)] += 1
        else:
            break
    children: list[list[list[int]]] = [[[] for _ in range(sizes[i])] for i in range(d - 1)]
    edges: list[tuple[int, int, int]] = []
    taken = set()
    for i in range(d - 1):
        for k in range(sizes[i + 1]):
            j = _below(rng, sizes[i])
            edges.append((i, j, k))
            taken.add((i, j, k))
    eoc = [(i, j, k) for i in range(d - 1) for j in range(sizes[i]) for k in range(sizes[i + 1])
           if (i, j, k) not in taken]
    edges += _sample(rng, eoc, e - len(edges))
    for i, j, k in edges:
        children[i][j].append(k)
    for row in children:
        for kids in row:
            kids.sort()
    return Structure(sizes, children), edges


class _Builder:
    """One ``Problem.gen`` try on a drawn structure (the authors' record/template bookkeeping, plain lists)."""

    def __init__(self, rng: random.Random, st: Structure, edges, max_parents: int):
        self.rng, self.st, self.P = rng, st, max_parents
        d, sz = st.d, st.sizes
        self.kids = st.children
        self.remain = list(edges)
        self.inter = [(i, j, k) for i in range(d - 1) for j in range(sz[i]) for k in range(i + 1, d)]
        self.chosen: list[Param] = []
        total = len(self.remain)
        for i in range(d - 1):
            for j in range(sz[i]):
                c = len(self.kids[i][j])
                total += max(2 * c - 1, 0) * (d - i - 2) + (c - 1 if c > 1 else c)
        self.total = total
        self.preds: dict[Param, list[Param]] = {}  # the template: parents in insertion order
        self.flag: set[tuple[int, int, int]] = set()  # structure edges marked "chosen"

    # -- template helpers
    def node(self, a: Param) -> None:
        self.preds.setdefault(a, [])

    def edge(self, u: Param, v: Param) -> None:
        self.node(u)
        self.node(v)
        if u not in self.preds[v]:
            self.preds[v].append(u)

    # -- choose_param / try_inter
    def _try(self, rec, ijk, start=True):
        if start:
            rec = (list(rec[0]), list(rec[1]), list(rec[2]))
        remain, inter, chosen = rec
        i, j, k = ijk
        inter.remove(ijk)
        chosen.append((1, i, j, k))
        count, off = 0, 0
        for x in self.kids[i][j]:
            off += 1
            if i + 1 != k and (i + 1, x, k) in inter:
                count += self._try(rec, (i + 1, x, k), False)[1]
            if (i, j, x) in remain:
                count += 1
                remain.remove((i, j, x))
                chosen.append((0, i, j, x))
        if i + 1 == k:
            return rec, count + (off - 1 if off > 1 else 1)
        return rec, count + max(2 * off - 1, 1)

    def choose_param(self, n: int, m: int) -> bool:
        rng = self.rng
        n = min(n, self.total)
        n_fix = m - n
        rec = (self.remain, self.inter, self.chosen)
        prev_rec, prev_count = rec, 0
        lowest, highest = 1, self.st.d - 1
        guard = 0
        while n > 0:
            guard += 1
            if guard > 2000:
                return False
            for diff in range(1, self.st.d):
                try_set = [x for x in rec[1] if x[2] - x[0] == diff]
                if not try_set:
                    if diff == lowest:
                        lowest += 1
                    elif diff == highest:
                        highest -= 1
                    continue
                tmp, count = self._try(rec, _pick(rng, try_set))
                if diff == lowest and count > n:
                    k = min(n + n_fix, len(rec[0]))
                    self._fix(rec, k)
                    self.n_op_min = m - n - n_fix + k
                    return True
                if count <= n:
                    if diff < highest:
                        prev_rec, prev_count = tmp, count
                    else:
                        rec = tmp
                        n -= count
                        break
                else:
                    rec = prev_rec
                    n -= prev_count
                    break
        k = min(n_fix, len(rec[0]))
        self._fix(rec, k)
        self.n_op_min = m - n_fix + k
        return True

    def _fix(self, rec, k: int) -> None:
        self.remain, self.inter, self.chosen = list(rec[0]), list(rec[1]), list(rec[2])
        for i, j, x in _sample(self.rng, self.remain, k):
            self.chosen.append((0, i, j, x))
            self.remain.remove((i, j, x))

    # -- setup_template / reasonable_sort
    def setup_template(self) -> None:
        for a in self.chosen:
            self.node(a)
        for a in self.chosen:
            if a[0] == ABSTRACT:
                _, i, j, k = a
                for x in self.kids[i][j]:
                    self.edge((0, i, j, x), a)
                if k - i > 1:
                    for x in self.kids[i][j]:
                        self.edge((1, i + 1, x, k), a)

    def reasonable_sort(self) -> list[Param] | None:
        rng = self.rng
        p0, p1 = rng.random(), abs(rng.gauss(0.0, 1.0))
        nodes = list(self.preds)
        out = {a: 0 for a in nodes}
        for v in nodes:
            for u in self.preds[v]:
                out[u] += 1
        zero = [a for a in nodes if out[a] == 0]
        remain = list(nodes)
        stack: list[Param] = []
        order: list[Param] = []
        first = True
        while remain:
            pool = zero if first else [a for a in zero if a in stack]
            first = False
            if not pool:
                return None
            a = _pick(rng, pool)
            order.append(a)
            remain.remove(a)
            zero.remove(a)
            for v in self.preds[a]:
                out[v] -= 1
                if out[v] == 0:
                    zero.append(v)
            if a in stack:
                stack.remove(a)
            need = not any(x in zero for x in stack)
            if a[0] == INSTANCE:
                if (rng.random() < p0 or need) and remain:
                    cand = zero if need else remain
                    vals = [(p1 if x[0] == ABSTRACT else 0.0) + (p1 if x not in stack else 0.0) for x in cand]
                    pick = cand[_weighted_index(rng, vals)]
                    self.edge(pick, a)
                    if pick not in stack:
                        stack.append(pick)
            else:
                for v in self.preds[a]:
                    if v not in stack:
                        stack.append(v)
        order.reverse()
        return order

    # -- design / fill_all / design_unused
    def design(self, order: list[Param], s: int) -> None:
        rng, P = self.rng, self.P
        max_extra = [max(min(t + 1, P) - 2, 0) if a[0] == INSTANCE else 0 for t, a in enumerate(order)]
        addable = [t for t, x in enumerate(max_extra) if x > 0]
        extra = [0] * len(order)
        n_fix = min(max(self.n_op_min, s) - self.n_op_min, sum(max_extra))
        for _ in range(n_fix):
            t = _pick(rng, addable)
            extra[t] += 1
            if extra[t] == max_extra[t]:
                addable.remove(t)
        self.node(RNG)
        for t, a in enumerate(order):
            if a[0] != INSTANCE:
                continue
            self.flag.add(a[1:])
            pool = [RNG] + order[:t]
            n_sample = (1 if rng.random() < 0.5 else 2) if extra[t] == 0 else extra[t] + 2
            n_sample = min(n_sample, t + 1, P)
            if n_sample != len(pool):
                for v in self.preds[a]:
                    pool.remove(v)
                    n_sample -= 1
                if rng.random() < 0.5 and n_sample > 0:
                    n_sample -= 1
                    self.edge(RNG, a)
                    pool.remove(RNG)
                pool = _sample(rng, pool, n_sample)
            for v in pool:
                self.edge(v, a)

    def _take(self, ijk) -> None:
        self.inter.remove(ijk)
        self.chosen.append((1, *ijk))

    def _fill_upper(self, uppers, lowers) -> None:
        """The authors' scan that makes "X's <Category>" known once everything below X is (``stamp`` logic)."""
        for upper in uppers:
            stamp = False
            for lower in lowers(upper):
                for j in range(self.st.sizes[upper]):
                    if (upper, j, upper + 1) not in self.inter:
                        for o in self.kids[upper][j]:
                            if (upper + 1, o, lower) in self.inter:
                                stamp = True
                                break
                        if stamp:
                            break
                        if (upper, j, lower) in self.inter:
                            self._take((upper, j, lower))

    def fill_all(self) -> None:
        for i in range(self.st.d - 1):
            for j in range(self.st.sizes[i]):
                if all((i, j, x) in self.flag for x in self.kids[i][j]) and (i, j, i + 1) in self.inter:
                    self._take((i, j, i + 1))
        self._fill_upper(range(self.st.d - 1), lambda u: range(u + 2, self.st.d))

    def fill_chosen(self, a: Param) -> None:
        _, i, j, k = a
        self.flag.add((i, j, k))
        if not all((i, j, x) in self.flag for x in self.kids[i][j]):
            return
        self._take((i, j, i + 1))
        for lower in range(i + 2, self.st.d):
            if any((i + 1, o, lower) in self.inter for o in self.kids[i][j]):
                break
            self._take((i, j, lower))
        self._fill_upper(range(i - 1, -1, -1), lambda u: range(i + 1, self.st.d))

    def add_param(self, a: Param, present: set[Param]) -> None:
        if a[0] != ABSTRACT or a in present:
            return
        _, i, j, k = a
        for x in self.kids[i][j]:
            self.edge((0, i, j, x), a)
            if i + 1 != k:
                self.edge((1, i + 1, x, k), a)
                self.add_param((1, i + 1, x, k), present)
        present.add(a)

    def design_unused(self, order: list[Param]) -> None:
        rng, P = self.rng, self.P
        present = set(order)
        independent: list[Param] = []
        while self.remain:
            i, j, k = _pick(rng, self.remain)
            a = (0, i, j, k)
            self.node(a)
            indep = rng.random() < 0.5
            pool = list(independent) if indep else list(self.chosen)
            n_sample, full = 1, len(pool) + 1
            cap = min(full, P)
            while n_sample < cap and rng.random() > 0.5:
                n_sample += 1
            if n_sample == full:
                self.edge(RNG, a)
            else:
                if rng.random() < 0.5:
                    self.edge(RNG, a)
                    n_sample -= 1
                pool = _sample(rng, pool, n_sample)
            for v in pool:
                self.edge(v, a)
                self.add_param(v, present)
            self.remain.remove((i, j, k))
            self.chosen.append(a)
            present.add(a)
            self.fill_chosen(a)
            if indep:
                independent.append(a)


def _weighted_index(rng: random.Random, vals: list[float]) -> int:
    top = max(vals)
    return rng.choices(range(len(vals)), [math.exp(v - top) for v in vals])[0]


def build(rng: random.Random, s: int, ip_max: int, modulus: int, max_parents: int = 4) -> DepGraph | None:
    """One parameter draw and up to :data:`TRIES` structures (``gen_param`` + ``Problem.gen``); the formulas
    and values follow ``parse`` (constants in [0, modulus), "times" constants in [1, modulus)). ``None`` when
    no structure of this draw gives a valid order (the caller redraws)."""
    shape = draw_shape(rng, s, ip_max)
    if shape is None:
        return None
    n, m, d, w0, w1, e, p = shape
    for _ in range(TRIES):
        st, edges = draw_structure(rng, d, w0, w1, e, p)
        b = _Builder(rng, st, edges, max_parents)
        if not b.choose_param(n, m):
            continue
        b.setup_template()
        order = b.reasonable_sort()
        if order is None:
            continue
        b.design(order, s)
        b.fill_all()
        b.design_unused(order)
        return _finish(rng, b, st, order, modulus)
    return None


def _finish(rng: random.Random, b: _Builder, st: Structure, order: list[Param], modulus: int) -> DepGraph:
    abstract = st.abstract_deps()
    topo = _topo(rng, b.preds)
    formulas: dict[Param, Formula] = {}
    for a in topo:
        if a[0] != INSTANCE:
            continue
        pre = list(b.preds[a])
        has_rng = RNG in pre
        if has_rng:
            pre.remove(RNG)
        combine = "sum"
        if not pre:
            formulas[a] = Formula((), "sum", _below(rng, modulus), None)
            continue
        const = op = None
        if has_rng:
            if rng.random() < 0.5:
                const, op = _below(rng, modulus), "add"
            else:
                const, op = 1 + _below(rng, modulus - 1), "mul"
        if len(pre) == 2 and rng.random() >= 0.5:
            combine = "diff"
        formulas[a] = Formula(tuple(pre), combine, const, op)
    present = set(topo)
    # the totals the problem never mentions (every "X's <Category>" has a value, 0 for an item without
    # children); abstract_deps lists them bottom-up, so each comes after its dependencies
    full_topo = topo + [a for a in abstract if a not in present]
    values = evaluate(full_topo, formulas, abstract, modulus)
    return DepGraph(st, formulas, abstract, list(order), full_topo, values, modulus)


def _topo(rng: random.Random, preds: dict[Param, list[Param]]) -> list[Param]:
    """A random topological order of the template without RNG (the authors' ``random_topological_sort``)."""
    indeg = {a: len(ps) for a, ps in preds.items()}
    kids: dict[Param, list[Param]] = {a: [] for a in preds}
    for v, ps in preds.items():
        for u in ps:
            kids[u].append(v)
    ready = [a for a in preds if indeg[a] == 0]
    out = []
    while ready:
        a = ready.pop(_below(rng, len(ready)))
        out.append(a)
        for c in kids[a]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    return [a for a in out if a != RNG]
