"""Verifier: every generated solution verifies; each single-step mutation fails with the right error kind."""
import random

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as hs

from tasks.igsm import PRESETS, generate, verify
from tasks.igsm.solution import LETTERS
from tasks.igsm.tokenizer import Tokenizer

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = hs.integers(0, 10**9)


def problem(seed, preset="med"):
    return generate(PRESETS[preset], random.Random(seed))


def sentences(p):
    return [Tokenizer.words(s) for s in p.solution_sentences()]


def render(sents, answer):
    return " ".join(" ".join(w) + " ." for w in sents) + f" <ANS> {answer} <EOS>"


def letter_of(ws):
    return ws[ws.index(";") - 1]


@SETTINGS
@given(seeds, hs.sampled_from(["small", "med", "hard"]))
def test_generated_solutions_verify(seed, preset):
    p = problem(seed, preset)
    rep = verify(p, p.solution_text + f" <ANS> {p.answer} <EOS>")
    assert rep.correct, (rep.error_kind, rep.message)
    assert rep.unnecessary_ops == 0 and rep.n_retracted == 0 and len(rep.accepted) == len(p.steps)


@SETTINGS
@given(seeds, hs.data())
def test_wrong_value(seed, data):
    p = problem(seed)
    s = sentences(p)
    t = data.draw(hs.integers(0, len(s) - 1))
    last_part = s[t][len(s[t]) - s[t][::-1].index(";"):]
    const = last_part.count("=") == 1  # "so p = 17"
    s[t][-1] = str((int(s[t][-1]) + 1) % p.graph.modulus)
    rep = verify(p, render(s, p.answer))
    assert (rep.error_kind, rep.error_step) == ("wrong_value" if const else "wrong_arithmetic", t)


@SETTINGS
@given(seeds, hs.data())
def test_wrong_operand(seed, data):
    p = problem(seed)
    s = sentences(p)
    t = data.draw(hs.integers(1, len(s) - 1)) if len(s) > 1 else 0
    earlier = [letter_of(w) for w in s[:t]]
    spots = [i for i, w in enumerate(s[t]) if w in earlier and s[t][i + 1] in ("+", "-", "*", "=", ";", ".")
             and i > s[t].index(";")]
    spots = [i for i in spots if s[t][i - 1] != "so" and s[t][i + 1] != "="] or \
            [i for i in spots if s[t][i - 1] == "=" and i + 1 < len(s[t])]
    assume(spots and len(earlier) >= 2)
    i = data.draw(hs.sampled_from(spots))
    s[t][i] = data.draw(hs.sampled_from([x for x in earlier if x != s[t][i]]))
    rep = verify(p, render(s, p.answer))
    assert (rep.error_kind, rep.error_step) == ("wrong_dependency", t)


@SETTINGS
@given(seeds, hs.data())
def test_unready_parameter(seed, data):
    p = problem(seed)
    s = sentences(p)
    pairs = [t for t in range(len(s) - 1) if letter_of(s[t]) in s[t + 1][s[t + 1].index(";"):]]
    assume(pairs)
    t = data.draw(hs.sampled_from(pairs))
    s[t], s[t + 1] = s[t + 1], s[t]
    rep = verify(p, render(s, p.answer))
    assert (rep.error_kind, rep.error_step) == ("not_ready", t)


@SETTINGS
@given(seeds, hs.data())
def test_skipped_step(seed, data):
    p = problem(seed)
    s = sentences(p)
    t = data.draw(hs.integers(0, len(s) - 1))
    gone = letter_of(s[t])
    del s[t]
    rep = verify(p, render(s, p.answer))
    users = [u for u in range(t, len(s)) if gone in s[u][s[u].index(";"):]]
    if users:
        assert (rep.error_kind, rep.error_step) == ("not_ready", users[0])
    else:
        assert t == len(s) and rep.error_kind == "missing_query"


@SETTINGS
@given(seeds, hs.data())
def test_renamed_parameter(seed, data):
    p = problem(seed)
    s = sentences(p)
    t = data.draw(hs.integers(0, len(s) - 1))
    names = p.structure.names
    fake = Tokenizer.words(f"{names[0][0]}'s {names[0][1]}")  # two items of one layer: never a parameter
    s[t] = ["Define"] + fake + s[t][s[t].index(";") - 2:]
    rep = verify(p, render(s, p.answer))
    assert (rep.error_kind, rep.error_step) == ("unknown_param", t)


def test_other_error_kinds():
    p = generate(PRESETS["med"].with_(op=6), random.Random(4))
    s = sentences(p)
    assert verify(p, render(s, (p.answer + 1) % 23)).error_kind == "wrong_answer"
    assert verify(p, render(s[:1] + s, p.answer)).error_kind == "redefined"
    s2 = [list(w) for w in s]
    old = letter_of(s2[1])
    s2[1] = [letter_of(s2[0]) if w == old else w for w in s2[1]]
    assert verify(p, render(s2, p.answer)).error_kind == "letter_reused"
    assert verify(p, "Define what as ; so").error_kind == "parse"
    assert verify(p, p.solution_text.rstrip(".")).error_kind == "parse"
    unused = next(x for x in LETTERS if x not in p.solution_text.split())
    s3 = [list(w) for w in s]
    last = s3[-1]
    i = next(i for i in range(last.index(";") + 1, len(last)) if last[i] in LETTERS and last[i - 1] != "so")
    last[i] = unused
    assert verify(p, render(s3, p.answer)).error_kind == "undefined_name"


def test_unnecessary_params_are_counted():
    rng = random.Random(9)
    for _ in range(50):
        p = generate(PRESETS["med"], rng)
        extra = [a for a in p.graph.formulas if a not in set(p.necessary) and not p.graph.formulas[a].parents]
        if extra:
            break
    a = extra[0]
    val = p.graph.values[a]
    name = p.structure.param_name(a)
    free = next(x for x in LETTERS if x not in p.solution_text.split())
    text = f"Define {name} as {free}; so {free} = {val}. " + p.solution_text + f" <ANS> {p.answer}"
    rep = verify(p, text)
    assert rep.correct and rep.unnecessary_params == [a] and rep.unnecessary_ops == 1
