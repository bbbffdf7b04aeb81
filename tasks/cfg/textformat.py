"""A readable text format for user grammars, one line per nonterminal.

::

    # comments start with '#'
    [level 0]              # optional: levels are inferred from the root otherwise
    ROOT -> A B | B A
    A -> a b | b a c
    B -> c | a a
    terminals: a b c       # optional: fixes the terminal order (= terminal ids); else first appearance
    name: mygrammar        # optional

The root is the left-hand side of the first rule line. Without ``[level l]`` headers a symbol's level is its
distance from the root; with them, the headers must agree with that distance. Symbols with no rules are terminals
and must all sit on the deepest level (the layered shape the algorithms need); otherwise a
:class:`~tasks.cfg.grammar.GrammarError` names the symbol and rule that break it.
"""
from __future__ import annotations

import re

from tasks.cfg.grammar import Grammar, GrammarError

_NAME = re.compile(r"^[^\s|#\[\]:]+$")


def parse_text(text: str, name: str = "", default_name: str = "") -> Grammar:
    """Parse the text format into a :class:`Grammar` (``name`` overrides a ``name:`` line, which overrides
    ``default_name``)."""
    rules: dict[str, list[list[str]]] = {}
    order: list[str] = []
    declared_level: dict[str, int] = {}
    term_order: list[str] | None = None
    level = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[\s*level\s+(\d+)\s*\]", line)
        if m:
            level = int(m.group(1))
            continue
        if line.startswith("name:"):
            name = name or line[len("name:"):].strip()
            continue
        if line.startswith("terminals:"):
            term_order = line[len("terminals:"):].split()
            continue
        if "->" not in line:
            raise GrammarError(f"line {lineno}: expected 'A -> B C | ...', got {raw.strip()!r}")
        lhs, rhs = (p.strip() for p in line.split("->", 1))
        if not _NAME.match(lhs):
            raise GrammarError(f"line {lineno}: bad symbol name {lhs!r}")
        if lhs in rules:
            raise GrammarError(f"line {lineno}: nonterminal {lhs!r} is defined twice (put all its rules on one line)")
        alts = [a.split() for a in rhs.split("|")]
        for a in alts:
            if not a:
                raise GrammarError(f"line {lineno}: rule of {lhs!r} is empty")
        rules[lhs] = alts
        order.append(lhs)
        if level is not None:
            declared_level[lhs] = level
    if not order:
        raise GrammarError("grammar text has no rules")
    root = order[0]
    # Levels: declared ones, else breadth-first distance from the root; layering demands one level per symbol.
    # (Symbols no rule reaches are accepted only under an explicit header: the authors' cfg3e1 has some.)
    lvl_of = {root: 0, **declared_level}
    frontier = sorted(lvl_of, key=lambda s: lvl_of[s])
    appearance = list(frontier)
    while frontier:
        nxt = []
        for s in frontier:
            for alt in rules.get(s, []):
                for c in alt:
                    want = lvl_of[s] + 1
                    if c not in lvl_of:
                        lvl_of[c] = want
                        nxt.append(c)
                        appearance.append(c)
                    elif lvl_of[c] != want:
                        raise GrammarError(f"grammar is not layered: symbol {c!r} is used at level {want} in rule "
                                           f"{s} -> {' '.join(alt)} but sits at level {lvl_of[c]}")
        frontier = nxt
    reached, stack = {root}, [root]
    while stack:
        for alt in rules.get(stack.pop(), []):
            for c in alt:
                if c not in reached:
                    reached.add(c)
                    stack.append(c)
    unreachable = [s for s in order if s not in reached]
    for s in unreachable:
        if s not in declared_level:
            raise GrammarError(f"nonterminal {s!r} is unreachable from the root {root!r}")
    depth = max(lvl_of.values())
    for s, l in lvl_of.items():
        if s not in rules and l != depth:
            raise GrammarError(f"symbol {s!r} has no rules (a terminal) but sits at level {l}, not on the terminal "
                               f"level {depth}: grammar is not layered (or {s!r} is undefined)")
        if s in rules and l == depth:
            raise GrammarError(f"terminal-level symbol {s!r} (level {l}) has rules {rules[s]}")
    terms = [s for s in appearance if lvl_of[s] == depth]
    if term_order is not None:
        if sorted(term_order) != sorted(terms):
            raise GrammarError(f"'terminals:' line lists {term_order} but the rules use terminals {terms}")
        terms = term_order
    names = [[s for s in order if lvl_of[s] == l] for l in range(depth)] + [terms]
    index = [{s: i for i, s in enumerate(lv)} for lv in names]
    rule_idx = [[[[index[l + 1][c] for c in alt] for alt in rules[s]] for s in names[l]] for l in range(depth)]
    return Grammar(names=names, rules=rule_idx, name=name or default_name, allow_unreachable=bool(unreachable))


def to_text(g: Grammar) -> str:
    """Write a grammar in the text format (explicit levels and terminal order, so it reloads equal):
    :meth:`Grammar.to_text`."""
    return g.to_text()
