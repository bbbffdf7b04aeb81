"""Issue 20, items 3 and 7: impossible generator settings are refused at construction (never a hang), and
``verify`` returns a typed verdict for any input string."""
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from tasks.igsm import ERROR_KINDS, PRESETS, IGSMConfig, IGSMTask, generate, verify
from tasks.igsm.tokenizer import Tokenizer


def test_issue20_3_n_ctx_shorter_than_every_problem_raises_at_construction():
    # the tiny preset's problems are >= 44 tokens; before the fix batches() looped forever at n_ctx 32
    with pytest.raises(ValueError, match="'n_ctx' = 40: none of 256 drawn problems fits"):
        IGSMTask("tiny", n_ctx=40)
    task = IGSMTask("tiny")
    with pytest.raises(ValueError, match="'n_ctx' = 40"):
        next(task.batches(2, n_ctx=40))


def test_issue20_3_op_max_unreachable_with_ip_max_raises():
    # op_max 15 with ip_max 2: at most 4 ops exist (two instance parameters, two item totals)
    with pytest.raises(ValueError, match="'op_max' = 15"):
        IGSMConfig(op_max=15, ip_max=2)
    with pytest.raises(ValueError, match="'op_max' = 15"):
        IGSMTask("tiny", op_max=15, ip_max=2)


def test_issue20_3_too_few_letters_raises():
    # every operation of the binarised solution takes one fresh letter: op=k needs k letters
    with pytest.raises(ValueError, match="'letters' = 1"):
        IGSMTask("tiny", letters=1)
    rng = random.Random(0)
    for _ in range(200):  # independent check of "one letter per operation" on generated solutions
        p = generate(PRESETS["small"], rng)
        defined = re.findall(r"(?:\bas |; )([A-Za-z])(?=;| =)", p.solution_text)  # step letters and temporaries
        assert len(set(defined)) == len(defined) == p.op
    task = IGSMTask("tiny", letters=3)  # op_max 3: exactly enough
    assert next(task.batches(1)).tokens.shape[0] == 1


def _problem():
    return generate(PRESETS["small"], random.Random(3))


@pytest.mark.parametrize("answer_text", ["²", "٣", "３", "1" * 5000, "-1", "x"])
def test_issue20_7_odd_answer_strings_get_a_verdict(answer_text):
    p = _problem()
    rep = verify(p, f"{p.solution_text} <ANS> {answer_text} <EOS>")
    assert not rep.correct
    assert rep.error_kind == ("wrong_answer" if answer_text.isascii() and answer_text.isdigit() else "parse")


def test_issue20_7_arabic_indic_answer_is_not_our_format():
    p = _problem()
    arabic = "".join(chr(0x660 + int(c)) for c in str(p.answer))
    assert verify(p, f"{p.solution_text} <ANS> {p.answer} <EOS>").correct
    rep = verify(p, f"{p.solution_text} <ANS> {arabic} <EOS>")  # was scored correct before the fix
    assert (rep.correct, rep.error_kind) == (False, "parse")


@pytest.mark.parametrize("number", ["²", "٣", "7" * 5000, "0" * 4999 + "5"])
def test_issue20_7_odd_numbers_inside_the_solution(number):
    p = _problem()
    ws = Tokenizer.words(p.solution_text)
    ws[ws.index(".") - 1] = number  # the result of the first sentence
    rep = verify(p, " ".join(ws) + f" <ANS> {p.answer} <EOS>")
    assert not rep.correct and rep.error_step == 0
    if number.isascii():  # an ASCII number is read exactly, however long: "0...05" = 5
        value = int(number.lstrip("0") or "0") if len(number) < 4300 else None
        first = p.steps[0]
        if value is not None and value == first.value:
            pytest.fail("test picked a correct value")
        assert rep.error_kind in ("wrong_value", "wrong_arithmetic")
    else:
        assert rep.error_kind == "parse"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.text(max_size=300), hs.data())
def test_issue20_7_any_string_gets_a_typed_verdict(junk, data):
    p = _problem()
    ws = Tokenizer.words(p.solution_text)
    cut = data.draw(hs.integers(0, len(ws)))
    text = " ".join(ws[:cut]) + junk + " ".join(ws[cut:])
    rep = verify(p, text)
    assert rep.correct or rep.error_kind in ERROR_KINDS


def test_issue20_7_non_string_output_is_a_type_error():
    with pytest.raises(TypeError, match="'output'"):
        verify(_problem(), 12)
