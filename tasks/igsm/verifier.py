"""Step-by-step verification of a (model-written) solution against a problem's true dependency graph.

Checks per sentence, in this order (the first failing check names the error kind):

``parse``               not "Define <name> as <letter>; [<T> = <expr>;]* so <letter> = <expr>."
``unknown_param``       <name> is no parameter of this problem
``redefined``           the parameter was defined before
``not_ready``           some true parent of the parameter is not defined yet (used before definition)
``letter_reused``       the sentence's letter or a temporary's letter is not fresh
``undefined_name``      an operand letter was never defined
``wrong_dependency``    the parameters the sentence uses differ from the parameter's true parents
``wrong_operand_value`` "a + b = 3 + 4": a number differs from its letter's value
``wrong_arithmetic``    a binary operation (or "g = a = v") is wrong mod the modulus
``wrong_value``         the arithmetic is right but the parameter's value is not its true value

then for the whole solution: ``missing_query`` / ``query_not_last`` (the last defined parameter must be the query)
and ``wrong_answer``. Retracted sentences "Define <name> as [BACK]." are skipped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tasks.igsm.generator import Problem
from tasks.igsm.solution import LETTERS, OPS
from tasks.igsm.structure import Param
from tasks.igsm.tokenizer import Tokenizer

ERROR_KINDS = (
    "parse", "unknown_param", "redefined", "not_ready", "letter_reused", "undefined_name", "wrong_dependency",
    "wrong_operand_value", "wrong_arithmetic", "wrong_value", "missing_query", "query_not_last", "wrong_answer",
)
_LETTERS = frozenset(LETTERS)


@dataclass
class StepRecord:
    """An accepted or retracted sentence: its index among the written sentences, parameter and value."""

    index: int
    param: Param | None
    letter: str | None
    value: int | None
    retracted: bool = False


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`: correct, or the first error (kind, step, message); steps; unneeded work."""
    correct: bool
    error_kind: str | None = None
    error_step: int | None = None
    message: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    unnecessary_params: list[Param] = field(default_factory=list)
    unnecessary_ops: int = 0
    answer: int | None = None

    @property
    def accepted(self) -> list[StepRecord]:
        """The sentences that count, in order (retracted ones left out)."""
        return [s for s in self.steps if not s.retracted]

    @property
    def retracted(self) -> list[int]:
        """Indices (among the written sentences) of the retracted ``[BACK]`` sentences."""
        return [s.index for s in self.steps if s.retracted]

    @property
    def n_retracted(self) -> int:
        """Number of retracted ``[BACK]`` sentences."""
        return len(self.retracted)


class _Fail(Exception):
    def __init__(self, kind: str, message: str):
        self.kind, self.message = kind, message


def _split(ws: list[str], sep: str) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for w in ws:
        if w == sep:
            out.append([])
        else:
            out[-1].append(w)
    return out


def _isnum(w: str) -> bool:
    """Our numbers are ASCII digits only: ``str.isdigit`` also accepts superscripts and other scripts' digits."""
    return w.isascii() and w.isdigit()


def _num(w: str) -> int:
    """The value of an ASCII digit string of any length (``int(str)`` refuses more than 4,300 digits)."""
    if len(w) <= 4000:
        return int(w)
    v = 0
    for t in range(0, len(w), 4000):
        chunk = w[t : t + 4000]
        v = v * 10 ** len(chunk) + int(chunk)
    return v


def _show(v) -> str:
    """A number for a message (a huge one as its size: printing it would hit the int-to-str digit limit)."""
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return f"<a {v.bit_length()}-bit number>" if isinstance(v, int) and v.bit_length() > 256 else str(v)


def _term(ws: list[str]):
    if len(ws) != 1:
        raise _Fail("parse", f"expected one operand, got {' '.join(ws)!r}")
    w = ws[0]
    if _isnum(w):
        return _num(w)
    if w in _LETTERS:
        return w
    raise _Fail("parse", f"{w[:80]!r} is neither a number nor a letter")


def _expr(segs: list[list[str]]):
    """``segs`` after the defined letter: [res] | [letter, res] | [t op t, n op n, res] -> (terms, op, nums, res).

    A constant is written once ("so y = 3"): "so y = 3 = 9" is no form the solutions use, and reading it as
    "y = 3" or "y = 9" would let a wrong step through, so it is a parse error."""
    res = segs[-1]
    if len(res) != 1 or not _isnum(res[0]):
        raise _Fail("parse", f"result {' '.join(res)[:80]!r} is not a number")
    r = _num(res[0])
    if len(segs) == 1:
        return [r], None, None, r
    if len(segs) == 2:
        term = _term(segs[0])
        if not isinstance(term, str):
            raise _Fail("parse", f"'{_show(term)} = {_show(r)}': a constant is written once ('so <letter> = "
                                 "<number>'), a copy as '<letter> = <old letter> = <number>'")
        return [term], None, None, r
    if len(segs) == 3 and len(segs[0]) == 3 and len(segs[1]) == 3 and segs[0][1] in OPS and segs[0][1] == segs[1][1]:
        nums = [segs[1][0], segs[1][2]]
        if not all(_isnum(n) for n in nums):
            raise _Fail("parse", f"calculation {' '.join(segs[1])[:80]!r} is not numeric")
        return [_term(segs[0][:1]), _term(segs[0][2:])], segs[0][1], [_num(n) for n in nums], r
    raise _Fail("parse", f"cannot read expression {' = '.join(' '.join(s) for s in segs)!r}")


@dataclass
class _Sentence:
    """One parsed sentence: ``Define <name> as <letter>; <defs>`` (``defs`` end with the letter's own), or a
    retraction ``Define <name> as [BACK]`` (``letter`` None, no defs)."""
    name: tuple[str, ...]
    letter: str | None
    defs: list = field(default_factory=list)  # [(letter, (terms, op, nums, result))]


def _parse_sentence(w: list[str]) -> _Sentence:
    """The grammar of one sentence (its words, without the period); :class:`_Fail` ``parse`` if it is not one."""
    if len(w) < 4 or w[0] != "Define":
        raise _Fail("parse", f"sentence does not start with 'Define': {' '.join(w)!r}")
    if "[BACK]" in w:
        if w[-1] != "[BACK]" or w[-2] != "as" or w.count("[BACK]") != 1:
            raise _Fail("parse", "retracted sentence must read 'Define <name> as [BACK]'")
        return _Sentence(tuple(w[1:-2]), None)
    if ";" not in w:
        raise _Fail("parse", "missing ';' after the defined letter")
    semi = w.index(";")
    if semi < 4 or w[semi - 2] != "as" or w[semi - 1] not in _LETTERS:
        raise _Fail("parse", "expected 'Define <name> as <letter>;'")
    name, letter = tuple(w[1 : semi - 2]), w[semi - 1]
    parts = [_split(p, "=") for p in _split(w[semi + 1 :], ";")]
    *temp_parts, last = parts
    if last[0] != ["so", letter]:
        raise _Fail("parse", f"last part must start with 'so {letter} ='")
    defs = []
    for p in temp_parts:
        if len(p) < 2 or len(p[0]) != 1 or p[0][0] not in _LETTERS:
            raise _Fail("parse", f"temporary must read '<letter> = ...', got {' '.join(sum(p, []))!r}")
        defs.append((p[0][0], _expr(p[1:])))
    defs.append((letter, _expr(last[1:])))
    return _Sentence(name, letter, defs)


def _read_answer(ws: list[str]) -> tuple[list[str], int | None, str | None]:
    """Split the words at ``<ANS>``: (solution words, the answer read, why the answer part does not read).

    The answer part is exactly one ASCII number (then ``<EOS>``/``<PAD>``): a second ``<ANS>`` or more words
    would otherwise be ignored, and which answer counted would depend on reading order."""
    if "<ANS>" not in ws:
        return ws, None, None
    cut = ws.index("<ANS>")
    tail = [w for w in ws[cut + 1 :] if w not in ("<EOS>", "<PAD>")]
    if len(tail) == 1 and _isnum(tail[0]):
        return ws[:cut], _num(tail[0]), None
    if not tail:  # cut off before the answer: no answer, judged as a wrong one
        return ws[:cut], None, None
    return ws[:cut], None, f"answer {' '.join(tail)[:80]!r} is not one number in ASCII digits"


class _Checker:
    """The checks of one solution against one problem, sentence by sentence (the order of the module docstring);
    holds what the accepted sentences defined so far."""

    def __init__(self, problem: Problem):
        self.g, self.m = problem.graph, problem.graph.modulus
        self.names = {tuple(Tokenizer.words(self.g.structure.param_name(a))): a for a in self.g.topo}
        self.known: dict[Param, int] = {}
        self.letter_val: dict[str, int] = {}
        self.letter_param: dict[str, Param] = {}

    def retracted(self, idx: int, s: _Sentence) -> StepRecord:
        """A ``[BACK]`` sentence must still name a parameter of the problem (the one it takes back)."""
        a = self.names.get(s.name)
        if a is None:
            raise _Fail("unknown_param", f"retracted {' '.join(s.name)!r} is not a parameter of this problem")
        return StepRecord(idx, a, None, None, retracted=True)

    def accept(self, idx: int, s: _Sentence) -> StepRecord:
        """Check one defining sentence and record what it defines; :class:`_Fail` names the first error."""
        g, m, name = self.g, self.m, s.name
        a = self.names.get(name)
        if a is None:
            raise _Fail("unknown_param", f"{' '.join(name)!r} is not a parameter of this problem")
        if a in self.known:
            raise _Fail("redefined", f"{' '.join(name)!r} was already defined")
        parents = set(g.parents(a))
        missing = [p for p in parents if p not in self.known]
        if missing:
            raise _Fail("not_ready", f"{' '.join(name)!r} needs {g.structure.param_name(missing[0])!r} first")
        new = [t for t, _ in s.defs]
        if len(set(new)) != len(new) or any(t in self.letter_val for t in new):
            raise _Fail("letter_reused", f"letters {new} are not all fresh")
        self._check_names(s.defs, parents)
        vals = self._values(s.defs)
        if vals[s.letter] != g.values[a]:
            raise _Fail("wrong_value", f"{' '.join(name)!r} = {_show(vals[s.letter])} but its value is {g.values[a]}")
        for t, _ in s.defs:
            self.letter_val[t] = vals[t]
        self.letter_param[s.letter] = a
        self.known[a] = vals[s.letter]
        return StepRecord(idx, a, s.letter, vals[s.letter])

    def _check_names(self, defs, parents: set[Param]) -> None:
        local: set[str] = set()
        used: set[Param] = set()
        for t, (terms, *_rest) in defs:
            for x in terms:
                if isinstance(x, str):
                    if x not in self.letter_val and x not in local:
                        raise _Fail("undefined_name", f"letter {x!r} is used before it is defined")
                    if x in self.letter_param:
                        used.add(self.letter_param[x])
            local.add(t)
        if used != parents:
            raise _Fail("wrong_dependency", f"uses {sorted(used)} but the true parents are {sorted(parents)}")

    def _values(self, defs) -> dict[str, int]:
        m = self.m
        vals = dict(self.letter_val)
        for t, (terms, op, nums, res) in defs:
            tv = [vals[x] if isinstance(x, str) else x for x in terms]
            if nums is not None and [n % m for n in nums] != [v % m for v in tv]:
                raise _Fail("wrong_operand_value", f"{t}: operands {_show(nums)} but their values are {tv}")
            expect = OPS[op](tv[0], tv[1]) % m if op else tv[0] % m
            if (op or isinstance(terms[0], str)) and res != expect:
                raise _Fail("wrong_arithmetic", f"{t}: {_show(res)} != {expect} (mod {m})")
            vals[t] = res
        return vals


def verify(problem: Problem, output: str | list[str], answer: int | None = None) -> VerifyReport:
    """Verify ``output``: the text after ``<SOL>`` (may include ``<ANS> v <EOS>``), or its word list.

    ``answer`` (an int) overrides the one read after ``<ANS>``. Each sentence is parsed
    (:func:`_parse_sentence`), then checked (:class:`_Checker`); the first failure is the report's error.
    """
    if not isinstance(output, (str, list, tuple)) or not all(isinstance(w, str) for w in output):
        raise TypeError(f"verify field 'output' = {output!r:.80}: must be a str or a list of str words")
    if answer is not None and (not isinstance(answer, int) or isinstance(answer, bool)):
        raise TypeError(f"verify field 'answer' = {answer!r:.80} ({type(answer).__name__}): must be an int or None")
    ws = Tokenizer.words(output) if isinstance(output, str) else list(output)
    ws, read_answer, bad_answer = _read_answer(ws)
    if answer is None:
        answer = read_answer
    else:
        bad_answer = None  # the caller's answer replaces whatever follows <ANS>
    ws = [w for w in ws if w not in ("<SOL>", "<EOS>", "<PAD>")]
    g = problem.graph
    rep = VerifyReport(correct=False, answer=answer)
    checker = _Checker(problem)
    sentences = _split(ws, ".")
    unterminated = bool(sentences[-1])  # the last sentence lacks its period: a parse error there
    if not unterminated:
        sentences.pop()
    for idx, w in enumerate(sentences):
        try:
            if unterminated and idx == len(sentences) - 1:
                raise _Fail("parse", "the last sentence has no period")
            sentence = _parse_sentence(w)
            rep.steps.append(checker.retracted(idx, sentence) if sentence.letter is None
                             else checker.accept(idx, sentence))
        except _Fail as f:
            rep.error_kind, rep.error_step, rep.message = f.kind, idx, f.message
            break
    _finish(rep, g, checker.known, len(sentences), answer, bad_answer)
    return rep


def _finish(rep: VerifyReport, g, known: dict, n: int, answer: int | None, bad_answer: str | None) -> None:
    """Whole-solution checks after the sentences: unneeded work, the query defined last, the answer."""
    nece = set(g.order)
    defined = [s.param for s in rep.accepted]
    rep.unnecessary_params = [a for a in defined if a not in nece]
    rep.unnecessary_ops = sum(g.op(a) for a in rep.unnecessary_params)
    if rep.error_kind is not None:
        return
    if not defined or defined[-1] != g.query:
        kind = "query_not_last" if g.query in known else "missing_query"
        rep.error_kind, rep.error_step, rep.message = kind, n, "the last defined parameter is not the query"
    elif bad_answer is not None:
        rep.error_kind, rep.error_step, rep.message = "parse", n, bad_answer
    elif answer is None or answer != g.values[g.query]:
        rep.error_kind, rep.error_step = "wrong_answer", n
        rep.message = f"answer {_show(answer)} but the query's value is {g.values[g.query]}"
    else:
        rep.correct = True
