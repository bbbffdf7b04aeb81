"""The layered context-free grammar: symbols by level, rules, validation, and its written forms (the authors'
JSON both ways, the text format written; reading text is ``textformat.py``, files and built-ins ``loading.py``).

Every algorithm in this package (sampler, parser, next-token DP, expectations) relies on the paper's *layered*
shape: level 0 holds the root, the last level holds the terminals, and every rule of a level-``l`` symbol
rewrites it into 1-3 symbols of level ``l + 1``. Layering bounds the span length of each level (which the parser
exploits) and excludes cycles, so the grammar is validated once here and the algorithms never re-check it.

>>> from tasks.cfg import load_builtin
>>> g = load_builtin("cfg3b")
>>> g.depth, g.n_terminals, g.n_rules
(6, 3, 32)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: longest right-hand side accepted (the paper's grammars use 2-3)
MAX_RULE_LEN = 3

Rules = tuple[tuple[tuple[tuple[int, ...], ...], ...], ...]


class GrammarError(ValueError):
    """A malformed grammar; the message names the offending symbol or rule."""


@dataclass(frozen=True)
class Grammar:
    """A layered CFG.

    ``names[l]`` are the symbol names of level ``l`` (``names[0]`` = the root, ``names[-1]`` = the terminals, whose
    index is the terminal id used everywhere in this package). ``rules[l][i]`` lists the right-hand sides of
    symbol ``i`` of level ``l``, each a tuple of indices into level ``l + 1``. Rules are chosen uniformly.
    """

    #: given as any nested sequences, stored as tuples (``__post_init__``); the annotations say what is accepted
    names: Sequence[Sequence[str]]
    rules: Sequence[Sequence[Sequence[Sequence[int]]]]
    name: str = ""
    #: the authors' cfg3e1 has NTs no rule reaches; their files load with this set, user grammars are strict
    allow_unreachable: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(tuple(str(s) for s in lvl) for lvl in self.names)
        rules = tuple(tuple(tuple(tuple(_child_index(c, lvl, i) for c in rhs) for rhs in sym)
                            for i, sym in enumerate(lvl_rules)) for lvl, lvl_rules in enumerate(self.rules))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "rules", rules)
        _validate(names, rules, self.allow_unreachable)

    # --- shape -------------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Number of rule levels (= NT levels, root included); terminals live at level ``depth``."""
        return len(self.rules)

    @property
    def sizes(self) -> list[int]:
        """Number of symbols of each level, the root's level first and the terminals last."""
        return [len(lvl) for lvl in self.names]

    @property
    def terminals(self) -> tuple[str, ...]:
        """The terminal names, indexed by terminal id (``names[-1]``)."""
        return self.names[-1]

    @property
    def n_terminals(self) -> int:
        """Number of terminals ``T`` (the CFG tokenizer's ``d_vocab`` is ``4 + T``)."""
        return len(self.names[-1])

    @property
    def n_rules(self) -> int:
        """Total number of rules over all NT symbols (each right-hand side counts once)."""
        return sum(len(sym) for lvl in self.rules for sym in lvl)

    def symbol(self, level: int, index: int) -> str:
        """Name of symbol ``index`` of level ``level``."""
        return self.names[level][index]

    # --- dense tables used by the vectorised algorithms ------------------------------------------------------
    @cached_property
    def tables(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per level ``l < depth``: ``(rhs [n_sym, max_rules, 3] padded with -1, rule_len [n_sym, max_rules]
        (0 = no rule), n_rules [n_sym])``."""
        out = []
        for lvl in self.rules:
            r = max(len(sym) for sym in lvl)
            rhs = np.full((len(lvl), r, MAX_RULE_LEN), -1, dtype=np.int64)
            ln = np.zeros((len(lvl), r), dtype=np.int64)
            for i, sym in enumerate(lvl):
                for j, rule in enumerate(sym):
                    rhs[i, j, : len(rule)] = rule
                    ln[i, j] = len(rule)
            out.append((rhs, ln, (ln > 0).sum(1)))
        return out

    @cached_property
    def span_bounds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per level: ``(min_len[n_sym], max_len[n_sym])`` of the strings each symbol derives."""
        lo = [np.ones(self.n_terminals, dtype=np.int64)]
        hi = [np.ones(self.n_terminals, dtype=np.int64)]
        for lvl in reversed(self.rules):
            lo.insert(0, np.array([min(sum(lo[0][c] for c in rhs) for rhs in sym) for sym in lvl]))
            hi.insert(0, np.array([max(sum(hi[0][c] for c in rhs) for rhs in sym) for sym in lvl]))
        return list(zip(lo, hi))

    def length_range(self) -> tuple[int, int]:
        """Shortest and longest string of the language."""
        lo, hi = self.span_bounds[0]
        return int(lo[0]), int(hi[0])

    # --- formats --------------------------------------------------------------------------------------------
    def to_authors_json(self) -> dict[str, Any]:
        """The authors' JSON layout (``sizes``, ``idx``, ``all``; ids: terminals 1..|T|, EOS, MASK, SEP, NTs)."""
        t = self.n_terminals
        ids: list[list[int]] = [[] for _ in self.names]
        nxt = t + 4
        for lvl in range(self.depth - 1, -1, -1):
            ids[lvl] = list(range(nxt, nxt + len(self.names[lvl])))
            nxt += len(self.names[lvl])
        ids[-1] = list(range(1, t + 1))
        all_ = [
            [
                {"depth": lvl, "id": ids[lvl][i], "name": nm,
                 "children": [list(r) for r in self.rules[lvl][i]] if lvl < self.depth else None}
                for i, nm in enumerate(self.names[lvl])
            ]
            for lvl in range(len(self.names))
        ]
        return {"depth": self.depth, "eos_token": t + 1, "mask_token": t + 2, "sep_token": t + 3,
                "sizes": self.sizes, "idx": ids, "all": all_, "name": self.name,
                **({"allow_unreachable": True} if self.allow_unreachable else {})}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (used in task specs)."""
        return {"name": self.name, "names": [list(n) for n in self.names],
                "rules": [[[list(r) for r in sym] for sym in lvl] for lvl in self.rules],
                "allow_unreachable": self.allow_unreachable}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Grammar":
        """Inverse of :meth:`to_dict` (grammars in task specs); ``name`` and ``allow_unreachable`` are optional."""
        if not isinstance(d, dict) or "names" not in d or "rules" not in d:
            raise GrammarError(f"grammar dict needs fields 'names' and 'rules'; got {sorted(d) if isinstance(d, dict) else d!r}")
        return cls(names=d["names"], rules=d["rules"], name=d.get("name", ""),
                   allow_unreachable=bool(d.get("allow_unreachable", False)))

    def to_text(self) -> str:
        """The readable text format (``textformat.py`` reads it back), with explicit levels and terminal order, so
        it reloads equal."""
        lines = [f"name: {self.name}"] if self.name else []
        for lvl, lvl_rules in enumerate(self.rules):
            lines.append(f"[level {lvl}]")
            for i, sym in enumerate(lvl_rules):
                alts = " | ".join(" ".join(self.names[lvl + 1][c] for c in rhs) for rhs in sym)
                lines.append(f"{self.names[lvl][i]} -> {alts}")
        lines.append("terminals: " + " ".join(self.terminals))
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        """Write ``.json`` (authors' layout) or any other suffix (the readable text format)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_authors_json()) if path.suffix == ".json" else self.to_text())


def _child_index(c: Any, lvl: int, i: int) -> int:
    """A rule's child as an int; 0.7 or True is a typo, not index 0 or 1, so it is refused (not truncated)."""
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
        raise GrammarError(f"rule of symbol {i} (level {lvl}) has child {c!r} of type {type(c).__name__}; "
                           f"children are integer indices into level {lvl + 1}")
    return int(c)


def _validate(names: tuple[tuple[str, ...], ...], rules: Rules, allow_unreachable: bool) -> None:
    if len(names) < 2:
        raise GrammarError(f"grammar needs at least a root level and a terminal level; got {len(names)} level(s)")
    if len(rules) != len(names) - 1:
        raise GrammarError(f"grammar has {len(names)} symbol levels but rules for {len(rules)} levels; "
                           f"expected {len(names) - 1} (terminals have no rules)")
    if len(names[0]) != 1:
        raise GrammarError(f"level 0 must hold exactly one root symbol; got {list(names[0])}")
    seen: dict[str, int] = {}
    for lvl, syms in enumerate(names):
        if not syms:
            raise GrammarError(f"level {lvl} has no symbols")
        for s in syms:
            if s in seen:
                raise GrammarError(f"symbol {s!r} is defined twice (levels {seen[s]} and {lvl})")
            seen[s] = lvl
    for lvl, lvl_rules in enumerate(rules):
        if len(lvl_rules) != len(names[lvl]):
            raise GrammarError(f"level {lvl} has {len(names[lvl])} symbols but {len(lvl_rules)} rule lists")
        used = set()
        for i, sym_rules in enumerate(lvl_rules):
            sym = names[lvl][i]
            if not sym_rules:
                raise GrammarError(f"nonterminal {sym!r} (level {lvl}) has no rules")
            if len(set(sym_rules)) != len(sym_rules):
                raise GrammarError(f"nonterminal {sym!r} (level {lvl}) lists the same rule twice")
            for rhs in sym_rules:
                if not 1 <= len(rhs) <= MAX_RULE_LEN:
                    kind = "empty" if not rhs else "too long"
                    raise GrammarError(f"rule of {sym!r} (level {lvl}) is {kind}: length {len(rhs)}, "
                                       f"allowed 1..{MAX_RULE_LEN}")
                for c in rhs:
                    if not 0 <= c < len(names[lvl + 1]):
                        raise GrammarError(f"rule of {sym!r} (level {lvl}) refers to undefined symbol index {c} "
                                           f"of level {lvl + 1} (which has {len(names[lvl + 1])} symbols)")
                    used.add(c)
        unused = [names[lvl + 1][c] for c in range(len(names[lvl + 1])) if c not in used]
        if unused and not allow_unreachable:
            raise GrammarError(f"symbol(s) {unused} of level {lvl + 1} are unreachable (no level-{lvl} rule uses them)")


def from_authors_json(d: dict[str, Any], name: str = "", allow_unreachable: bool | None = None) -> Grammar:
    """Build a grammar from the authors' layout (``idx`` / ``all`` with ``children`` as next-level indices).

    Unreachable symbols are refused unless ``allow_unreachable`` is passed or the file declares it (a field
    ``"allow_unreachable": true``, which :meth:`Grammar.to_authors_json` writes): a user's file with an unreachable
    symbol is usually a typo, so strictness is never switched off by *inferring* it from the rules. The built-in
    cfg3e1 (which the authors shipped with unreachable NTs) is loaded with the flag set by
    :func:`tasks.cfg.loading.load_builtin`.
    """
    if not isinstance(d, dict) or "all" not in d:
        raise GrammarError("authors' grammar JSON needs field 'all' (list of levels of symbols)")
    levels = d["all"]
    names, rules = [], []
    for lvl, syms in enumerate(levels):
        names.append([s.get("name", f"L{lvl}_{i}") for i, s in enumerate(syms)])
        last = lvl == len(levels) - 1
        for s in syms:
            ch = s.get("children")
            if last and ch:
                raise GrammarError(f"terminal {s.get('name')!r} (last level {lvl}) has rules {ch}")
            if not last and not ch:
                raise GrammarError(f"symbol {s.get('name')!r} of level {lvl} has no rules but is not on the "
                                   f"terminal level {len(levels) - 1} (grammar is not layered)")
        if not last:
            rules.append([[list(r) for r in s["children"]] for s in syms])
    if allow_unreachable is None:
        allow_unreachable = d.get("allow_unreachable", False)
        if not isinstance(allow_unreachable, bool):
            raise GrammarError(f"field 'allow_unreachable' must be true or false, got {allow_unreachable!r}")
    return Grammar(names=names, rules=rules, name=name or d.get("name", ""), allow_unreachable=allow_unreachable)
