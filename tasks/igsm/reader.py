"""Reading iGSM English from any source (the authors' generator, the paper, a model) into a :class:`Problem`.

``read(problem_text)`` parses "The number of each X's Y equals ...." sentences and the question "How many Y does X
have?" (question last: ``pq``, first: ``qp``; sentences in any order; leading and repeated spaces ignored) and
rebuilds the structure (which item is in which layer, found from the names: the text never says), the formulas
and every value, so :func:`tasks.igsm.verify` and the probe labels work on it. Names are matched against the
authors' full list, so "Sainsbury's's Milk", "Track and Field's Javelin" and "each Popcorn's Popcorn" read
unambiguously. ``read(problem_text, solution_text)`` also checks the solution and solves in its order.

Malformed text raises :class:`ReadError` naming the sentence and what was expected.
"""
from __future__ import annotations

import random
import re
from functools import lru_cache

from tasks.igsm.config import IGSMConfig
from tasks.igsm.dependency import DepGraph, Formula, evaluate
from tasks.igsm.generator import Problem, bucket_of
from tasks.igsm.hierarchy import load_hierarchy
from tasks.igsm.solution import LETTERS, OutOfLetters, build_solution
from tasks.igsm.structure import ABSTRACT, INSTANCE, Param, Structure

_HEAD = "The number of each "
_QUESTION = re.compile(r"How many (.+) does (.+) have\?")
_CONST = re.compile(r"([0-9]+) (more than|times as much as) (.+)")  # ASCII digits only (\d takes any script's)


class ReadError(ValueError):
    """Text that is not iGSM English: says which sentence and what was expected there."""


@lru_cache(maxsize=1)
def _lexicon():
    h = load_hierarchy(names="all")
    cats_of: dict[str, set[str]] = {}
    for cat, subs in h.items.items():
        for sub in subs:
            for n in sub:
                cats_of.setdefault(n, set()).add(cat)
    categories = {c for hier in h.hierarchies for c in hier}
    return h.hierarchies, cats_of, categories


def _sentences(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise ReadError("problem text is empty")
    parts = re.split(r"(?<=[.?]) ", text)
    if not parts[-1].endswith((".", "?")):
        raise ReadError(f"sentence {len(parts)} ({parts[-1][:60]!r}): expected a final '.' or '?'")
    return parts


def _split_ref(ref: str, where: str) -> tuple[str, str]:
    """"each X's Y" -> (X, Y) at the one "'s " that leaves a known item and a known item or category."""
    _, cats_of, categories = _lexicon()
    if not ref.startswith("each "):
        raise ReadError(f"{where}: expected 'each <item>'s <item or category>', got {ref[:60]!r}")
    body = ref[5:]
    cuts = [(body[:t], body[t + 3:]) for t in range(len(body)) if body.startswith("'s ", t)]
    cuts = [(x, y) for x, y in cuts if x in cats_of and (y in cats_of or y in categories)]
    if len(cuts) != 1:
        what = "no known item and item/category" if not cuts else f"{len(cuts)} readings"
        raise ReadError(f"{where}: {ref[:60]!r} gives {what}; expected 'each <item>'s <item or category>'")
    return cuts[0]


def _constant(digits: str, where: str, modulus: int) -> int:
    """A constant of the text: ASCII digits below the modulus (the generator writes every number reduced).

    A larger one (10^30) would be reduced silently, so the problem read would not be the problem written."""
    if len(digits) > len(str(modulus)) or int(digits) >= modulus:
        raise ReadError(f"{where}: constant {digits[:40]!r}{'...' if len(digits) > 40 else ''} is not below the "
                        f"modulus {modulus}; iGSM numbers are written reduced (0 .. {modulus - 1})")
    return int(digits)


def _rhs(rhs: str, where: str, modulus: int = 23):
    """-> (const, const_op, combine, [(X, Y)])"""
    if re.fullmatch(r"[0-9]+", rhs):
        return _constant(rhs, where, modulus), None, "sum", []
    const = op = None
    m = _CONST.fullmatch(rhs)
    if m:
        const, op, rhs = (_constant(m.group(1), where, modulus), ("add" if m.group(2) == "more than" else "mul"),
                          m.group(3))
    combine, lead = "sum", None
    for lead_text, kind in (("the difference of ", "diff"), ("the sum of ", "sum")):
        if rhs.startswith(lead_text):
            combine, lead, rhs = kind, lead_text, rhs[len(lead_text):]
    if not rhs.startswith("each "):
        raise ReadError(f"{where}: expected a number, 'N more than ...', 'N times as much as ...', 'the sum of "
                        f"...', 'the difference of ...' or 'each <item>'s ...', got {rhs[:60]!r}")
    refs = ["each " + r for r in re.split(r", each | and each ", rhs[5:])]
    if lead and len(refs) < 2 or combine == "diff" and len(refs) != 2 or not lead and len(refs) != 1:
        raise ReadError(f"{where}: {len(refs)} terms do not fit {(lead or 'a single term').strip()!r}")
    return const, op, combine, [_split_ref(r, where) for r in refs]


def _layers(pairs, where_of) -> tuple[tuple[str, ...], dict]:
    """Choose the hierarchy and each mention's layer: (X, Y) needs layer(Y) = layer(X) + 1 for an item Y and
    layer(Y) > layer(X) for a category Y; a name in two categories (Popcorn) is resolved by its partner."""
    hierarchies, cats_of, categories = _lexicon()
    fits = [h for h in hierarchies
            if all((y in h) if y in categories else any(c in h for c in cats_of[y]) for _, y in pairs)
            and all(any(c in h for c in cats_of[x]) for x, _ in pairs)]
    if len(fits) != 1:
        raise ReadError(f"the names fit {len(fits)} of the {len(hierarchies)} name hierarchies; expected one")
    h = fits[0]
    layer = {}
    for n, (x, y) in enumerate(pairs):
        xs = {h.index(c) for c in cats_of[x] if c in h}
        if y in categories:
            combos = {(lx, None) for lx in xs if lx < h.index(y)}
        else:
            combos = {(lx, ly) for lx in xs for ly in {h.index(c) for c in cats_of[y] if c in h} if ly == lx + 1}
        if len(combos) != 1:
            raise ReadError(f"{where_of(n)}: {x!r}'s {y!r} fits {len(combos)} layer assignments; expected one")
        layer[n] = combos.pop()
    return h, layer


def read(problem_text: str, solution_text: str | None = None, *, modulus: int = 23,
         template_hash: str = "ours") -> Problem:
    """The :class:`Problem` a text states (see module docstring); with ``solution_text``, that solution must
    verify and the problem's solution order is its order. ``template_hash`` picks how ``bucket`` is computed
    (see :class:`IGSMConfig`)."""
    if not isinstance(problem_text, str):
        raise TypeError(f"read field 'problem_text' = {problem_text!r:.60}: must be a str")
    sents = _sentences(problem_text)
    qs = [t for t, s in enumerate(sents) if s.startswith("How many ")]
    if len(qs) != 1 or qs[0] not in (0, len(sents) - 1):
        raise ReadError(f"expected one question 'How many <Y> does <X> have?' first or last, found {len(qs)}"
                        + (f" at sentence {qs[0] + 1}" if len(qs) == 1 else ""))
    q = qs[0]
    fmt = "pq" if q == len(sents) - 1 else "qp"
    m = _QUESTION.fullmatch(sents[q])
    if m is None:
        raise ReadError(f"sentence {q + 1} ({sents[q][:60]!r}): expected 'How many <Y> does <X> have?'")
    heads, rhss, wheres = [], [], []
    for t, s in enumerate(sents):
        if t == q:
            continue
        where = f"sentence {t + 1} ({s[:50]!r}...)"
        if not s.startswith(_HEAD) or " equals " not in s or not s.endswith("."):
            raise ReadError(f"{where}: expected 'The number of each <X>'s <Y> equals <expression>.'")
        head, rhs = s[len(_HEAD) - 5: -1].split(" equals ", 1)
        heads.append(_split_ref(head, where))
        rhss.append(_rhs(rhs, where, modulus))
        wheres.append(where)
    config = IGSMConfig(modulus=modulus, fmt=fmt, split="all", template_hash=template_hash)
    return _build(heads, rhss, wheres, (m.group(2), m.group(1)), config, solution_text)


def _build(heads, rhss, wheres, question, config, solution_text) -> Problem:
    modulus = config.modulus
    # every (X, Y) mention, in order: targets, then each sentence's terms, then the question
    pairs = list(heads) + [r for rhs in rhss for r in rhs[3]] + [question]
    owner = list(range(len(heads))) + [t for t, rhs in enumerate(rhss) for _ in rhs[3]] + [None]

    def where_of(n: int) -> str:
        return "the question" if owner[n] is None else wheres[owner[n]]

    h, layer = _layers(pairs, where_of)
    _, _, categories = _lexicon()
    used = sorted({lx for lx, _ in layer.values()} | {ly for _, ly in layer.values() if ly is not None}
                  | {h.index(y) for _, y in pairs if y in categories})
    top, d = used[0], used[-1] - used[0] + 1
    names: list[list[str]] = [[] for _ in range(d)]

    def item(lay: int, name: str) -> int:
        row = names[lay - top]
        if name not in row:
            row.append(name)
        return row.index(name)

    params: list[Param] = []
    for n, (x, y) in enumerate(pairs):
        lx, ly = layer[n]
        j = item(lx, x)
        params.append((INSTANCE, lx - top, j, item(ly, y)) if ly is not None
                      else (ABSTRACT, lx - top, j, h.index(y) - top))
    if any(not row for row in names):
        raise ReadError(f"no item of the layer {h[top + [bool(r) for r in names].index(False)]!r}, between layers "
                        "that have items")
    children: list[list[list[int]]] = [[[] for _ in names[i]] for i in range(d - 1)]
    formulas: dict[Param, Formula] = {}
    order: list[Param] = []
    n_ref = len(heads)
    for t, (const, op, combine, refs) in enumerate(rhss):
        a = params[t]
        if a in formulas:
            raise ReadError(f"{wheres[t]}: {heads[t][0]}'s {heads[t][1]} is stated twice")
        ps = tuple(params[n_ref : n_ref + len(refs)])
        n_ref += len(refs)
        formulas[a] = Formula(ps, combine, const, op)
        order.append(a)
        children[a[1]][a[2]].append(a[3])
    for row in children:
        for kids in row:
            kids.sort()
    st = Structure([len(r) for r in names], children, list(h[top : top + d]), names)
    abstract = st.abstract_deps()
    for t, (_, _, _, refs) in enumerate(rhss):
        for a in formulas[order[t]].parents:
            if a[0] == INSTANCE and a not in formulas:
                raise ReadError(f"{wheres[t]}: uses {st.param_name(a)!r}, which no sentence states")
    query = params[-1]
    if query[0] == INSTANCE and query not in formulas:
        raise ReadError(f"the question asks for {st.param_name(query)!r}, which no sentence states")
    topo = _topo(formulas, abstract, wheres, order, st)
    values = evaluate(topo, formulas, abstract, modulus)
    g = DepGraph(st, formulas, abstract, _solve_order(query, formulas, abstract), topo, values, modulus)
    p = _problem(g, order, config)
    if solution_text is not None:
        p = _follow(p, solution_text, order, config)
    return p


def _problem(g: DepGraph, sentence_order, config) -> Problem:
    try:
        steps = build_solution(g, random.Random(0))
    except OutOfLetters:
        raise ReadError(f"the question needs {len(g.order)} parameters, and their solution more than "
                        f"{len(LETTERS)} letters (one per step and temporary): no iGSM solution can be written for "
                        "this problem") from None
    return Problem(g, steps, list(sentence_order), config.fmt, bucket_of(steps, g, config), config)


def _follow(p: Problem, solution_text: str, sentence_order, config) -> Problem:
    from dataclasses import replace

    from tasks.igsm.verifier import verify

    rep = verify(p, solution_text, answer=None if "<ANS>" in solution_text else p.answer)
    if not rep.correct:
        raise ReadError(f"the solution does not verify: {rep.error_kind} at sentence {rep.error_step + 1}: "
                        f"{rep.message}")
    nece = set(p.graph.order)
    g = replace(p.graph, order=[s.param for s in rep.accepted if s.param in nece])
    return _problem(g, sentence_order, config)


def _solve_order(query: Param, formulas, abstract) -> list[Param]:
    """The query's ancestors, each after its parents (depth first, in formula order), query last.

    An explicit stack, not recursion: a chain of a few thousand sentences must not hit Python's recursion
    limit (a RecursionError is no message about the text)."""
    def deps(a: Param):
        return formulas[a].parents if a[0] == INSTANCE else abstract[a]

    out: list[Param] = []
    seen: set[Param] = {query}
    stack = [(query, iter(deps(query)))]
    while stack:
        a, pending = stack[-1]
        for x in pending:
            if x not in seen:
                seen.add(x)
                stack.append((x, iter(deps(x))))
                break
        else:
            stack.pop()
            out.append(a)
    return out


def _topo(formulas, abstract, wheres, order, st) -> list[Param]:
    nodes = list(formulas) + list(abstract)
    deps = {a: (formulas[a].parents if a[0] == INSTANCE else abstract[a]) for a in nodes}
    indeg = {a: len(set(deps[a])) for a in nodes}
    kids: dict[Param, list[Param]] = {a: [] for a in nodes}
    for a in nodes:
        for x in set(deps[a]):
            kids[x].append(a)
    ready = [a for a in nodes if indeg[a] == 0]
    out = []
    while ready:
        a = ready.pop()
        out.append(a)
        for c in kids[a]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    if len(out) != len(nodes):
        stuck = next(t for t, a in enumerate(order) if a not in set(out))
        raise ReadError(f"{wheres[stuck]}: {st.param_name(order[stuck])!r} depends on itself through other "
                        "sentences (a cycle)")
    return out
