"""The sparse, layered CYK chart that membership, parse trees, parse counts and the inside DP share.

Why sparse: on the paper's grammars a string of length n has fewer than n derivable (span, symbol) pairs per level
(docs/cfg.md), while a dense CYK table has O(n^2) cells per level. Why layered: level-``l`` spans
are built only from level-``l + 1`` spans, so the chart is computed level by level, bottom-up, for a whole
batch at once. Each level is a join: a rule ``A -> X Y Z`` is matched by extending *items* (a rule whose first
``k`` children derive a span) with a next-level span that starts where the item ends and has the right symbol.
The join is a ``searchsorted`` on span keys ``(start, symbol)`` followed by ``np.repeat`` expansion, so the cost
is proportional to the number of items, never to n^2.

All strings of a batch live on one global position axis, string ``k`` at ``base[k] .. base[k] + n_k`` with an
unused separator position after each, so no span crosses two strings.

Per span the chart optionally keeps ``log inside`` (float64, exact log-sum-exp over items: the log probability that
the symbol derives exactly the span when rules are chosen uniformly) and the number of parse trees (Python ints).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tasks.cfg.grammar import Grammar


@dataclass
class Spans:
    """Complete spans of one level, unique and sorted by ``(start, sym, end)``."""

    start: np.ndarray
    end: np.ndarray
    sym: np.ndarray
    login: np.ndarray | None = None      # log inside probability
    count: np.ndarray | None = None      # object array of Python ints: number of parse trees
    item: np.ndarray | None = None       # one complete item deriving the span: step * item_base + index
    item_base: int = 0
    key: np.ndarray | None = None        # start * n_sym + sym, sorted (the join key)


@dataclass
class Items:
    """Partial or complete rule matches of one step: the first ``k`` children of ``rule`` derive [start, end)."""

    start: np.ndarray
    end: np.ndarray
    rule: np.ndarray
    span: np.ndarray                      # the k-th child's span (index into the child level's Spans)
    prev: np.ndarray                      # the item of step k - 1 (-1 at k = 1)
    login: np.ndarray | None = None       # sum of the children's log inside (rule probability not included)
    count: np.ndarray | None = None


@dataclass
class RuleTable:
    """The rules of one level as flat arrays (rule id = position)."""

    lhs: np.ndarray
    rhs: np.ndarray          # [R, 3], -1 padded
    length: np.ndarray
    logp: np.ndarray         # log of the uniform rule probability
    first_ptr: np.ndarray    # CSR over child symbols: rules whose first child is X are
    first_rules: np.ndarray  #   first_rules[first_ptr[X]:first_ptr[X + 1]]
    lhs_ptr: np.ndarray      # CSR over lhs symbols: rules of A are lhs_rules[lhs_ptr[A]:lhs_ptr[A + 1]]
    lhs_rules: np.ndarray


def rule_tables(g: Grammar) -> list[RuleTable]:
    cache = g.__dict__.get("_rule_tables")
    if cache is None:
        cache = []
        for lvl, syms in enumerate(g.rules):
            lhs = np.array([a for a, rs in enumerate(syms) for _ in rs])
            rhs = np.full((len(lhs), 3), -1, dtype=np.int64)
            rl = [r for rs in syms for r in rs]
            for i, r in enumerate(rl):
                rhs[i, : len(r)] = r
            length = np.array([len(r) for r in rl])
            logp = -np.log(np.array([len(syms[a]) for a in lhs], dtype=np.float64))
            n_child = len(g.names[lvl + 1])
            order = np.argsort(rhs[:, 0], kind="stable")
            first_ptr = np.searchsorted(rhs[order, 0], np.arange(n_child + 1))
            lhs_ptr = np.searchsorted(lhs, np.arange(len(syms) + 1))
            cache.append(RuleTable(lhs, rhs, length, logp, first_ptr, order, lhs_ptr, np.arange(len(lhs))))
        g.__dict__["_rule_tables"] = cache
    return cache


def expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``counts[i]`` children per row: ``(row of each child, index of the child within its row)``."""
    row = np.repeat(np.arange(len(counts)), counts)
    within = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    return row, within


@dataclass
class Chart:
    """The chart of a batch of strings: ``spans[l]`` per level (terminals at ``depth``), ``items[l][k-1]``."""

    grammar: Grammar
    base: np.ndarray                 # global position of each string's first token
    lengths: np.ndarray
    spans: list[Spans] = field(default_factory=list)
    items: list[list[Items]] = field(default_factory=list)

    def root_spans(self) -> np.ndarray:
        """Per string, the index of its full-length root span in ``spans[0]``, or -1 (not in the language)."""
        sp = self.spans[0]
        k = np.clip(np.searchsorted(self.base, sp.start, "right") - 1, 0, None)
        full = (self.base[k] == sp.start) & (sp.end == self.base[k] + self.lengths[k])
        out = np.full(len(self.base), -1, dtype=np.int64)
        out[k[full]] = np.nonzero(full)[0]
        return out


def build_chart(g: Grammar, tokens: np.ndarray, offsets: np.ndarray, *, inside: bool = False,
                counts: bool = False, keep_items: bool = False) -> Chart:
    """Bottom-up chart of the strings ``tokens[offsets[k]:offsets[k+1]]`` (terminal ids, already validated)."""
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    base = offsets[:-1] + np.arange(n)
    pos = np.arange(len(tokens)) + np.repeat(np.arange(n), lengths)
    width = int(offsets[-1] + n + 1)
    t = g.n_terminals
    term = Spans(start=pos, end=pos + 1, sym=tokens, key=pos * t + tokens)
    if inside:
        term.login = np.zeros(len(tokens))
    if counts:
        term.count = np.ones(len(tokens), dtype=object)
    chart = Chart(g, base, lengths, spans=[term], items=[])
    for lvl in range(g.depth - 1, -1, -1):
        spans, items = _level(rule_tables(g)[lvl], chart.spans[0], len(g.names[lvl]), width, inside, counts, keep_items)
        chart.spans.insert(0, spans)
        chart.items.insert(0, items)
    return chart


def _level(rt: RuleTable, child: Spans, n_sym: int, width: int, inside: bool, counts: bool, keep: bool):
    n_child = len(rt.first_ptr) - 1
    # step 1: every child span that is the first child of some rule
    cnt = rt.first_ptr[child.sym + 1] - rt.first_ptr[child.sym]
    sp, within = expand(cnt)
    rule = rt.first_rules[rt.first_ptr[child.sym[sp]] + within]
    cur = Items(child.start[sp], child.end[sp], rule, sp, np.full(len(sp), -1))
    if inside:
        cur.login = child.login[sp]
    if counts:
        cur.count = child.count[sp]
    steps, done = [cur], []
    for k in range(1, 4):
        fin = rt.length[cur.rule] == k
        done.append((cur, fin))
        if k == 3:
            break
        act = np.nonzero(~fin)[0]
        q = cur.end[act] * n_child + rt.rhs[cur.rule[act], k]
        lo = np.searchsorted(child.key, q, "left")
        hi = np.searchsorted(child.key, q, "right")
        row, within = expand(hi - lo)
        prev = act[row]
        sp = lo[row] + within
        nxt = Items(cur.start[prev], child.end[sp], cur.rule[prev], sp, prev)
        if inside:
            nxt.login = cur.login[prev] + child.login[sp]
        if counts:
            nxt.count = cur.count[prev] * child.count[sp]
        steps.append(nxt)
        cur = nxt
    # complete items -> unique spans of this level
    parts = [(it, np.nonzero(f)[0], k) for k, (it, f) in enumerate(done)]
    start = np.concatenate([it.start[i] for it, i, _ in parts])
    end = np.concatenate([it.end[i] for it, i, _ in parts])
    rule = np.concatenate([it.rule[i] for it, i, _ in parts])
    sym = rt.lhs[rule]
    key = (start * n_sym + sym) * width + end
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    heads = np.nonzero(first)[0]
    o = order[heads]
    spans = Spans(start=start[o], end=end[o], sym=sym[o], key=key[heads] // width)
    if keep:
        # a complete item is (step, index); encode as step * big + index for the parse tree walk
        big = max(len(it.start) for it, _, _ in parts) + 1
        code = np.concatenate([k * big + i for _, i, k in parts])
        spans.item = code[o]
        spans.item_base = big
    if inside:
        li = np.concatenate([it.login[i] for it, i, _ in parts]) + rt.logp[rule]
        li = li[order]
        mx = np.maximum.reduceat(li, heads) if len(li) else li
        spans.login = mx + np.log(np.add.reduceat(np.exp(li - np.repeat(mx, np.diff(np.append(heads, len(li))))),
                                                  heads)) if len(li) else li
    if counts:
        c = np.concatenate([it.count[i] for it, i, _ in parts])[order]
        spans.count = np.add.reduceat(c, heads) if len(c) else c
    return spans, (steps if keep or inside else [])
