"""Independent ground truth for the CFG tests: plain recursion and exact Fractions, no shared code paths.

Nothing here imports the package's algorithms; it only reads ``Grammar.names`` / ``Grammar.rules``.
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from fractions import Fraction
from functools import lru_cache


def derivations(g):
    """All derivations of the root: dict string(tuple) -> (probability Fraction, number of derivations)."""
    cur = {t: {(t,): (Fraction(1), 1)} for t in range(g.n_terminals)}
    for lvl in range(g.depth - 1, -1, -1):
        nxt = {}
        for a, rules in enumerate(g.rules[lvl]):
            out = defaultdict(lambda: [Fraction(0), 0])
            for rhs in rules:
                for combo in itertools.product(*(cur[c].items() for c in rhs)):
                    s = tuple(x for part, _ in combo for x in part)
                    p = Fraction(1, len(rules))
                    n = 1
                    for _, (pp, nn) in combo:
                        p *= pp
                        n *= nn
                    out[s][0] += p
                    out[s][1] += n
            nxt[a] = {s: tuple(v) for s, v in out.items()}
        cur = nxt
    return cur[0]


def next_token_from_enumeration(dist, x, n_terminals):
    """Exact P(next | x[:i]) for i = 0..len(x) from the full string distribution: rows of Fractions, EOS last."""
    rows = []
    for i in range(len(x) + 1):
        pre = tuple(x[:i])
        num = [Fraction(0)] * (n_terminals + 1)
        for s, (p, _) in dist.items():
            if s[:i] == pre:
                num[s[i] if len(s) > i else n_terminals] += p
        z = sum(num)
        rows.append([v / z for v in num])
    return rows


class PrefixInside:
    """Exact inside and prefix-inside probabilities of one string by memoised top-down recursion (Fractions).

    ``inside(l, a, i, j)``: P(symbol a of level l derives x[i:j]); ``prefix(l, a, i, n)``: P(a's yield starts
    with x[i:n]) for i < n -- the textbook prefix probability, a different decomposition from the package's
    left-to-right "start" DP.
    """

    def __init__(self, g, x):
        self.g, self.x = g, tuple(x)
        lo = [[1] * g.n_terminals]
        hi = [[1] * g.n_terminals]
        for lvl in reversed(g.rules):
            lo.insert(0, [min(sum(lo[0][c] for c in r) for r in rs) for rs in lvl])
            hi.insert(0, [max(sum(hi[0][c] for c in r) for r in rs) for rs in lvl])
        self.lo, self.hi = lo, hi
        self.inside = lru_cache(maxsize=None)(self._inside)
        self.seq = lru_cache(maxsize=None)(self._seq)
        self.prefix = lru_cache(maxsize=None)(self._prefix)

    def _inside(self, l, a, i, j):
        if not self.lo[l][a] <= j - i <= self.hi[l][a]:
            return Fraction(0)
        if l == self.g.depth:
            return Fraction(int(j == i + 1 and self.x[i] == a))
        rules = self.g.rules[l][a]
        return sum((self.seq(l + 1, rhs, i, j) for rhs in rules), Fraction(0)) / len(rules)

    def _seq(self, l, rhs, i, j):
        """P(the symbols rhs (level l) derive x[i:j] one after another)."""
        if not rhs:
            return Fraction(int(i == j))
        first, rest = rhs[0], rhs[1:]
        tot = Fraction(0)
        for k in range(i + self.lo[l][first], min(j, i + self.hi[l][first]) + 1):
            a = self.inside(l, first, i, k)
            if a:
                tot += a * self.seq(l, rest, k, j)
        return tot

    def _prefix(self, l, a, i, n):
        if l == self.g.depth:
            return Fraction(int(n == i + 1 and self.x[i] == a))
        rules = self.g.rules[l][a]
        tot = Fraction(0)
        for rhs in rules:
            for m in range(len(rhs)):     # the child in which the prefix's last token lies
                for j in range(i, n):
                    head = self.seq(l + 1, rhs[:m], i, j)
                    if head:
                        tot += head * self.prefix(l + 1, rhs[m], j, n)
        return tot / len(rules)


def next_token_by_prefix_inside(g, x, positions):
    """Exact P(next | x[:i]) rows (Fractions, EOS last) for the given positions."""
    rows = {}
    for i in positions:
        num = []
        for t in range(g.n_terminals):
            num.append(PrefixInside(g, tuple(x[:i]) + (t,)).prefix(0, 0, 0, i + 1))
        num.append(PrefixInside(g, tuple(x[:i])).inside(0, 0, 0, i) if i > 0 else Fraction(0))
        z = sum(num)
        rows[i] = [v / z for v in num]
    return rows
