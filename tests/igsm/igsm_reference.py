"""Independent ground truth for the iGSM tests: re-parse the problem text and evaluate it by brute force.

Nothing here imports the generator's formulas or values; only the item -> layer membership and the category
names come from the problem's structure (they are what the text means by a category).
"""
from __future__ import annotations

import re
from functools import lru_cache

_HEAD = "The number of each "


def split_ref(ref: str, known: set[str]) -> tuple[str, str]:
    """"each X's Y" -> (X, Y), splitting at the "'s " that leaves two known names ("Sainsbury's's Milk")."""
    assert ref.startswith("each "), ref
    ref = ref[5:]
    cuts = [(ref[:t], ref[t + 3:]) for t in range(len(ref)) if ref.startswith("'s ", t)]
    cuts = [(x, y) for x, y in cuts if x in known and y in known]
    assert len(cuts) == 1, (ref, cuts)
    return cuts[0]


def parse_rhs(rhs: str, known: set[str]):
    """-> (const or None, const_op or None, combine, [refs]); refs are separated by ", each" / " and each"
    (names may contain " and ")."""
    m = re.fullmatch(r"(\d+)", rhs)
    if m:
        return int(m.group(1)), None, "sum", []
    const, cop = None, None
    m = re.fullmatch(r"(\d+) more than (.*)", rhs)
    if m:
        const, cop, rhs = int(m.group(1)), "add", m.group(2)
    else:
        m = re.fullmatch(r"(\d+) times as much as (.*)", rhs)
        if m:
            const, cop, rhs = int(m.group(1)), "mul", m.group(2)
    combine = "sum"
    for lead, kind in (("the difference of ", "diff"), ("the sum of ", "sum")):
        if rhs.startswith(lead):
            rhs, combine = rhs[len(lead):], kind
    refs = ["each " + r for r in re.split(r", each | and each ", rhs[len("each "):])]
    return const, cop, combine, [split_ref(r, known) for r in refs]


def parse_problem(problem):
    """-> (formulas {(X, Y): parsed rhs}, query (X, Y))"""
    st = problem.structure
    known = {n for names in st.names for n in names} | set(st.categories)
    formulas = {}
    for s in problem.problem_sentences():
        head, rhs = s.split(" equals ", 1)
        assert head.startswith(_HEAD)
        formulas[split_ref("each " + head[len(_HEAD):], known)] = parse_rhs(rhs, known)
    m = re.fullmatch(r"How many (.*) does (.*) have\?", problem.question())
    return formulas, (m.group(2), m.group(1))


class Reference:
    """Exact-integer evaluation and op counting of a parsed problem."""

    def __init__(self, problem):
        st = problem.structure
        self.formulas, self.query = parse_problem(problem)
        self.layer = {n: i for i, names in enumerate(st.names) for n in names}
        self.cat_layer = {c: i for i, c in enumerate(st.categories)}
        self.children: dict[str, list[str]] = {}
        for x, y in self.formulas:
            self.children.setdefault(x, []).append(y)
        self.modulus = problem.graph.modulus
        self.value = lru_cache(maxsize=None)(self._value)

    def is_abstract(self, a) -> bool:
        return a[1] in self.cat_layer

    def deps(self, a) -> list:
        x, y = a
        if not self.is_abstract(a):
            return list(self.formulas[a][3])
        k = self.cat_layer[y]
        out = []
        for c in self.children.get(x, []):  # every child, as the authors define it: a childless one counts 0
            if self.layer[c] == k:
                out.append((x, c))
            elif self.layer[c] < k:
                out += [(x, c), (c, y)]
        return out

    def _value(self, a) -> int:  # exact integers, no reduction
        x, y = a
        if not self.is_abstract(a):
            const, cop, combine, refs = self.formulas[a]
            vs = [self.value(r) for r in refs]
            if not vs:
                return const
            base = vs[0] - vs[1] if combine == "diff" else sum(vs)
            return base if cop is None else (const + base if cop == "add" else const * base)
        k = self.cat_layer[y]
        total = 0
        for c in self.children.get(x, []):
            if self.layer[c] == k:
                total += self.value((x, c))
            elif self.layer[c] < k:
                total += self.value((x, c)) * self.value((c, y))
        return total

    def op(self, a) -> int:
        if self.is_abstract(a):
            return max(1, len(self.deps(a)) - 1)
        const, _, _, refs = self.formulas[a]
        return max(1, len(refs) + (const is not None) - 1)

    def necessary(self) -> set:
        seen, stack = {self.query}, [self.query]
        while stack:
            for d in self.deps(stack.pop()):
                if d not in seen:
                    seen.add(d)
                    stack.append(d)
        return seen

    def n_op(self) -> int:
        return sum(self.op(a) for a in self.necessary())

    def answer(self) -> int:
        return self.value(self.query) % self.modulus
