"""Implicit CFG (the paper's Result 10): each terminal is observed as a random token from its own bag.

The trick that keeps every algorithm working: an implicit grammar *is* a layered grammar with one more level,
whose rules ``t -> o`` (length 1, one per token ``o`` in ``t``'s bag) are chosen uniformly -- exactly the
implicit sampling process. Bags may overlap (an observed token then has several possible terminals, which the
parser and the next-token DP sum over). The labels gain a level: ``s[:, depth]`` is the hidden terminal.
"""
from __future__ import annotations

import numpy as np

from tasks.cfg.grammar import Grammar, GrammarError


def implicit_grammar(g: Grammar, bags: list[list[int]], n_tokens: int | None = None) -> Grammar:
    """``g`` with terminal ``t`` rewritten to each observable token in ``bags[t]`` (ids ``0..n_tokens-1``)."""
    if len(bags) != g.n_terminals:
        raise GrammarError(f"bags has {len(bags)} entries but grammar {g.name!r} has {g.n_terminals} terminals")
    n_tokens = n_tokens if n_tokens is not None else 1 + max((o for b in bags for o in b), default=-1)
    for t, bag in enumerate(bags):
        if not bag:
            raise GrammarError(f"bag of terminal {g.terminals[t]!r} is empty")
        if len(set(bag)) != len(bag) or any(not 0 <= o < n_tokens for o in bag):
            raise GrammarError(f"bag of terminal {g.terminals[t]!r} = {bag} must hold distinct ids in 0..{n_tokens - 1}")
    hidden = [f"{t}_hidden" for t in g.terminals]
    names = [list(n) for n in g.names[:-1]] + [hidden, [f"o{o}" for o in range(n_tokens)]]
    rules = [list(r) for r in g.rules] + [[[(o,) for o in bag] for bag in bags]]
    return Grammar(names=names, rules=rules, name=f"{g.name}+implicit", allow_unreachable=g.allow_unreachable)


def random_bags(n_terminals: int, bag_size: int, *, overlap: bool = False, n_tokens: int | None = None,
                seed: int = 0) -> list[list[int]]:
    """Bags of ``bag_size`` tokens per terminal: disjoint (``n_terminals * bag_size`` tokens) or, with
    ``overlap=True``, drawn independently from ``n_tokens`` tokens (default ``n_terminals * bag_size // 2``)."""
    if bag_size < 1 or n_terminals < 1:
        raise GrammarError(f"bag_size = {bag_size} and n_terminals = {n_terminals} must be >= 1")
    rng = np.random.default_rng(seed)
    if not overlap:
        perm = rng.permutation(n_terminals * bag_size)
        return [sorted(int(o) for o in perm[t * bag_size:(t + 1) * bag_size]) for t in range(n_terminals)]
    n_tokens = n_tokens or max(bag_size, n_terminals * bag_size // 2)
    if n_tokens < bag_size:
        raise GrammarError(f"n_tokens = {n_tokens} is smaller than bag_size = {bag_size}")
    if n_tokens > n_terminals * bag_size:
        raise GrammarError(f"n_tokens = {n_tokens} exceeds n_terminals * bag_size = {n_terminals * bag_size}")
    while True:
        bags = [sorted(int(o) for o in rng.choice(n_tokens, bag_size, replace=False)) for _ in range(n_terminals)]
        if len({o for b in bags for o in b}) == n_tokens:   # every token used, so ids are dense
            return bags
