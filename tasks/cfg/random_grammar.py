"""Random layered grammars with the paper's knobs (the authors' generator's parameters, by meaning).

Knobs: symbols per level (root first, terminals last), rules per NT range, rule length range, whether a rule may
repeat a symbol (cfg3b forbids it), whether two rules of one level may share a right-hand side (all the paper's
grammars forbid it), and a seed. Every symbol of a level is made reachable, so the result always validates.
"""
from __future__ import annotations

import numpy as np

from tasks.cfg.grammar import MAX_RULE_LEN, Grammar, GrammarError


def _names(sizes: list[int]) -> list[list[str]]:
    # authors' style: two capital letters in id order, terminals first (AA, AB, ...)
    out, k = [[] for _ in sizes], 0
    for lvl in range(len(sizes) - 1, -1, -1):
        for _ in range(sizes[lvl]):
            out[lvl].append(chr(65 + k // 26) + chr(65 + k % 26))
            k += 1
    return out


def random_grammar(sizes=(1, 3, 3, 3, 3, 3, 3), rules_per_nt=(2, 3), rule_len=(2, 3), *,
                   distinct_symbols: bool = False, distinct_rules: bool = True, seed: int = 0,
                   name: str = "", max_tries: int = 1000) -> Grammar:
    """A random layered grammar; same arguments and seed give the same grammar.

    >>> g = random_grammar(sizes=(1, 2, 2), rules_per_nt=(2, 2), rule_len=(2, 2), seed=1)
    >>> g.sizes, g.n_rules
    ([1, 2, 2], 6)
    """
    sizes = list(sizes)
    if len(sizes) < 2 or sizes[0] != 1 or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise GrammarError(f"sizes = {sizes!r}: need >= 2 levels of positive ints with exactly 1 root symbol")
    lo, hi = rules_per_nt
    if not 1 <= lo <= hi:
        raise GrammarError(f"rules_per_nt = {rules_per_nt!r}: need 1 <= min <= max")
    lmin, lmax = rule_len
    if not 1 <= lmin <= lmax <= MAX_RULE_LEN:
        raise GrammarError(f"rule_len = {rule_len!r}: need 1 <= min <= max <= {MAX_RULE_LEN}")
    if distinct_symbols and lmin > min(sizes[1:]):
        raise GrammarError(f"distinct_symbols with rule_len min {lmin} needs >= {lmin} symbols per level; sizes = {sizes}")
    rng = np.random.default_rng(seed)
    rules = []
    for lvl in range(len(sizes) - 1):
        n_child = sizes[lvl + 1]
        for _ in range(max_tries):
            level_rules, seen, ok = [], set(), True
            for _sym in range(sizes[lvl]):
                deg = int(rng.integers(lo, hi + 1))
                mine = []
                for _r in range(deg):
                    for _t in range(100):
                        ln = int(rng.integers(lmin, lmax + 1))
                        rhs = tuple(int(c) for c in (rng.choice(n_child, ln, replace=False) if distinct_symbols
                                                     else rng.integers(0, n_child, ln)))
                        if rhs in mine or (distinct_rules and rhs in seen):
                            continue
                        break
                    else:
                        ok = False
                        break
                    mine.append(rhs)
                    seen.add(rhs)
                level_rules.append(mine)
                if not ok:
                    break
            used = {c for sym in level_rules for r in sym for c in r}
            if ok and len(used) == n_child:
                break
        else:
            raise GrammarError(f"could not build level {lvl} in {max_tries} tries: knobs too tight "
                               f"(sizes={sizes}, rules_per_nt={rules_per_nt}, rule_len={rule_len})")
        rules.append(level_rules)
    return Grammar(names=_names(sizes), rules=rules, name=name or f"random_seed{seed}")
