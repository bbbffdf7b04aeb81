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
from dataclasses import dataclass, field

from tasks.cfg.grammar import Grammar, GrammarError

_NAME = re.compile(r"^[^\s|#\[\]:]+$")
_LEVEL = re.compile(r"\[\s*level\s+(\d+)\s*\]")


@dataclass
class _Lines:
    """What the lines of a grammar text say, before any check of the grammar's shape."""

    rules: dict[str, list[list[str]]] = field(default_factory=dict)  # lhs -> its alternatives, in file order
    declared_level: dict[str, int] = field(default_factory=dict)  # lhs -> the [level l] header above it
    terminals: list[str] | None = None  # a 'terminals:' line
    name: str = ""  # a 'name:' line


def parse_text(text: str, name: str = "", default_name: str = "") -> Grammar:
    """Parse the text format into a :class:`Grammar` (``name`` overrides a ``name:`` line, which overrides
    ``default_name``)."""
    lines = _read_lines(text)
    if not lines.rules:
        raise GrammarError("grammar text has no rules")
    root = next(iter(lines.rules))
    level_of, appearance = _levels(lines.rules, root, lines.declared_level)
    unreachable = _unreachable(lines.rules, root, lines.declared_level)
    depth = max(level_of.values())
    _check_layers(lines.rules, level_of, depth)
    terminals = _terminal_order(lines.terminals, [s for s in appearance if level_of[s] == depth])
    names = [[s for s in lines.rules if level_of[s] == lvl] for lvl in range(depth)] + [terminals]
    index = [{s: i for i, s in enumerate(symbols)} for symbols in names]
    rules = [[[[index[lvl + 1][c] for c in alt] for alt in lines.rules[s]] for s in names[lvl]] for lvl in range(depth)]
    return Grammar(names=names, rules=rules, name=name or lines.name or default_name,
                   allow_unreachable=bool(unreachable))


def _read_lines(text: str) -> _Lines:
    """Each line as a header, a ``name:`` / ``terminals:`` line or a rule line; a malformed line is refused by
    its number."""
    out, level = _Lines(), None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if m := _LEVEL.fullmatch(line):
            level = int(m.group(1))
        elif line.startswith("name:"):
            out.name = out.name or line[len("name:"):].strip()
        elif line.startswith("terminals:"):
            out.terminals = line[len("terminals:"):].split()
        else:
            lhs, alts = _rule_line(line, lineno, raw, out.rules)
            out.rules[lhs] = alts
            if level is not None:
                out.declared_level[lhs] = level
    return out


def _rule_line(line: str, lineno: int, raw: str, seen: dict[str, list[list[str]]]) -> tuple[str, list[list[str]]]:
    """``A -> B C | C B`` as ``("A", [["B", "C"], ["C", "B"]])``."""
    if "->" not in line:
        raise GrammarError(f"line {lineno}: expected 'A -> B C | ...', got {raw.strip()!r}")
    lhs, rhs = (p.strip() for p in line.split("->", 1))
    if not _NAME.match(lhs):
        raise GrammarError(f"line {lineno}: bad symbol name {lhs!r}")
    if lhs in seen:
        raise GrammarError(f"line {lineno}: nonterminal {lhs!r} is defined twice (put all its rules on one line)")
    alts = [a.split() for a in rhs.split("|")]
    if any(not a for a in alts):
        raise GrammarError(f"line {lineno}: rule of {lhs!r} is empty")
    return lhs, alts


def _levels(rules: dict[str, list[list[str]]], root: str,
            declared: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """Each symbol's level (declared, else its breadth-first distance from the root) and the order symbols first
    appear in; layering demands one level per symbol, so a symbol used at two levels is refused."""
    level_of = {root: 0, **declared}
    frontier = sorted(level_of, key=lambda s: level_of[s])
    appearance = list(frontier)
    while frontier:
        nxt = []
        for s in frontier:
            for alt in rules.get(s, []):
                for c in alt:
                    want = level_of[s] + 1
                    if c not in level_of:
                        level_of[c] = want
                        nxt.append(c)
                        appearance.append(c)
                    elif level_of[c] != want:
                        raise GrammarError(f"grammar is not layered: symbol {c!r} is used at level {want} in rule "
                                           f"{s} -> {' '.join(alt)} but sits at level {level_of[c]}")
        frontier = nxt
    return level_of, appearance


def _unreachable(rules: dict[str, list[list[str]]], root: str, declared: dict[str, int]) -> list[str]:
    """The nonterminals no rule reaches from the root. Accepted only under an explicit ``[level l]`` header (the
    authors' cfg3e1 has some); elsewhere such a symbol is a typo and refused."""
    reached, stack = {root}, [root]
    while stack:
        for alt in rules.get(stack.pop(), []):
            for c in alt:
                if c not in reached:
                    reached.add(c)
                    stack.append(c)
    unreachable = [s for s in rules if s not in reached]
    for s in unreachable:
        if s not in declared:
            raise GrammarError(f"nonterminal {s!r} is unreachable from the root {root!r}")
    return unreachable


def _check_layers(rules: dict[str, list[list[str]]], level_of: dict[str, int], depth: int) -> None:
    """Symbols without rules (terminals) all on the deepest level, and none with rules there."""
    for s, lvl in level_of.items():
        if s not in rules and lvl != depth:
            raise GrammarError(f"symbol {s!r} has no rules (a terminal) but sits at level {lvl}, not on the terminal "
                               f"level {depth}: grammar is not layered (or {s!r} is undefined)")
        if s in rules and lvl == depth:
            raise GrammarError(f"terminal-level symbol {s!r} (level {lvl}) has rules {rules[s]}")


def _terminal_order(declared: list[str] | None, used: list[str]) -> list[str]:
    """The terminal ids: a ``terminals:`` line's order, which must list exactly the terminals the rules use, else
    first appearance."""
    if declared is None:
        return used
    if sorted(declared) != sorted(used):
        raise GrammarError(f"'terminals:' line lists {declared} but the rules use terminals {used}")
    return declared


def to_text(g: Grammar) -> str:
    """Write a grammar in the text format (explicit levels and terminal order, so it reloads equal):
    :meth:`Grammar.to_text`."""
    return g.to_text()
