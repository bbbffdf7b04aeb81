"""English rendering in the paper's formats (problem sentences, question, solution sentences).

* instance parameter, only RNG:   "The number of each X's Y equals 5."
* with parents:                   "The number of each X's Y equals [5 more than | 5 times as much as]
                                   <A | the sum of A and B | the difference of A and B | the sum of A, B and C>."
  where A, B, ... are "each X's Y" (an instance parameter) or "each X's <Category>" (an abstract one)
* question:                       "How many Y does X have?"  (Y an item, or a category for an abstract query)
* solution sentence:              "Define X's Y as g; R = a + b = 3 + 4 = 7; so g = 5 * R = 5 * 7 = 12."
* retracted sentence (Part 2.2):  "Define X's Y as [BACK]."
"""
from __future__ import annotations

from tasks.igsm.dependency import Formula
from tasks.igsm.solution import Expr, Step
from tasks.igsm.structure import INSTANCE, Param, Structure

BACK = "[BACK]"


def param_ref(st: Structure, a: Param) -> str:
    """How the problem refers to a parameter: "each X's Y"."""
    return f"each {st.param_name(a)}"


def problem_sentence(st: Structure, a: Param, f: Formula) -> str:
    """The sentence stating instance parameter ``a`` (no trailing period)."""
    head = f"The number of {param_ref(st, a)} equals"
    if not f.parents:
        return f"{head} {f.const}"
    refs = [param_ref(st, p) for p in f.parents]
    if len(refs) == 1:
        body = refs[0]
    elif len(refs) == 2:
        body = f"the {'difference' if f.combine == 'diff' else 'sum'} of {refs[0]} and {refs[1]}"
    else:
        body = "the sum of " + ", ".join(refs[:-1]) + " and " + refs[-1]
    if f.const_op == "add":
        return f"{head} {f.const} more than {body}"
    if f.const_op == "mul":
        return f"{head} {f.const} times as much as {body}"
    return f"{head} {body}"


def question(st: Structure, q: Param) -> str:
    _, i, j, k = q
    what = st.names[i + 1][k] if q[0] == INSTANCE else st.categories[k]
    return f"How many {what} does {st.names[i][j]} have?"


def _expr(e: Expr) -> str:
    if e.op is None:
        t = e.operands[0]
        return f"{e.value}" if isinstance(t, int) else f"{t} = {e.value}"
    hint = f"{e.operands[0]} {e.op} {e.operands[1]}"
    return f"{hint} = {e.values[0]} {e.op} {e.values[1]} = {e.value}"


def step_sentence(st: Structure, s: Step) -> str:
    """One solution sentence (no trailing period)."""
    name = st.param_name(s.param)
    if s.back:
        return f"Define {name} as {BACK}"
    assert s.final is not None
    parts = [f"Define {name} as {s.letter}"]
    parts += [f"{t} = {_expr(e)}" for t, e in s.temps]
    parts.append(f"so {s.letter} = {_expr(s.final)}")
    return "; ".join(parts)
