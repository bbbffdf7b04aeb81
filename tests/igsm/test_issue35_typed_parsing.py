"""Issue 35: typed parsing in the iGSM verifier and reader. Text that is no iGSM solution or problem is refused
(never read as a nearby one), a wrong-typed argument is a TypeError, and a long chain is no RecursionError."""
import random
import sys

import pytest

from tasks.igsm import PRESETS, generate, verify
from tasks.igsm.reader import ReadError, _lexicon, read
from tasks.igsm.tokenizer import Tokenizer


def _problem(seed=0, preset="med"):
    return generate(PRESETS[preset], random.Random(seed))


def _with_constant_step(max_seed=200):
    """A problem whose solution has a step 'so <letter> = <number>' (a parameter equal to a constant)."""
    for seed in range(max_seed):
        p = _problem(seed)
        for t, s in enumerate(p.solution_sentences()):
            ws = Tokenizer.words(s)
            if ws[-2] == "=" and ws[-4] == "so" and ws[-1].isdigit():
                return p, t
    raise AssertionError("no constant step found")


def test_typed_parsing_verify_refuses_a_constant_written_twice():
    """'so y = 3 = 9' was read as 'y = 9' (the 3 never checked): a wrong step accepted."""
    p, t = _with_constant_step()
    sents = p.solution_sentences()
    ws = Tokenizer.words(sents[t])
    sents[t] = " ".join(ws[:-1] + [str((int(ws[-1]) + 5) % 23), "=", ws[-1]])  # so y = <wrong> = <right>
    rep = verify(p, ". ".join(sents) + f". <ANS> {p.answer} <EOS>")
    assert not rep.correct and rep.error_kind == "parse" and rep.error_step == t, rep.message


def test_typed_parsing_verify_refuses_retracting_an_unknown_name():
    p = _problem()
    text = "Define X as [BACK]. " + p.solution_text + f" <ANS> {p.answer} <EOS>"
    rep = verify(p, text)
    assert not rep.correct and rep.error_kind == "unknown_param" and rep.error_step == 0, rep.message
    # retracting a real parameter still reads (the retry data)
    name = p.graph.structure.param_name(p.graph.order[0])
    assert verify(p, f"Define {name} as [BACK]. " + p.solution_text + f" <ANS> {p.answer} <EOS>").correct


@pytest.mark.parametrize("tail", ["<ANS> {a} <ANS> 3", "<ANS> {a} 3 <EOS>", "<ANS> {a} <ANS> {a}"])
def test_typed_parsing_verify_refuses_more_than_one_answer(tail):
    p = _problem()
    rep = verify(p, p.solution_text + " " + tail.format(a=p.answer))
    assert not rep.correct and rep.error_kind == "parse" and "one number" in rep.message, rep.message
    assert verify(p, p.solution_text + f" <ANS> {p.answer} <EOS> <PAD> <PAD>").correct  # padding is fine


@pytest.mark.parametrize("answer", ["9", 9.0, True, [9]])
def test_typed_parsing_verify_non_int_answer_is_a_type_error(answer):
    p = _problem()
    with pytest.raises(TypeError, match="'answer'"):
        verify(p, p.solution_text, answer=answer)
    assert verify(p, p.solution_text, answer=p.answer).correct


def _usable_text():
    """A tiny problem text that reads, built from two lexicon names."""
    hier, cats_of, _ = _lexicon()
    h = hier[0]
    x = sorted(n for n, cs in cats_of.items() if h[0] in cs and len(cs) == 1 and "'s" not in n)[0]
    y = sorted(n for n, cs in cats_of.items() if h[1] in cs and len(cs) == 1 and "'s" not in n)[0]
    return f"The number of each {x}'s {y} equals {{c}}. How many {y} does {x} have?"


def test_typed_parsing_read_refuses_oversized_and_non_ascii_constants():
    text = _usable_text()
    assert read(text.format(c="7")).answer == 7
    for constant in ("1" + "0" * 30, "23", "99", "\u0663", "\uff17"):  # 10^30, the modulus, Arabic-Indic/fullwidth
        with pytest.raises(ReadError, match="sentence 1"):
            read(text.format(c=constant))
    with pytest.raises(ReadError, match="not below the modulus 23"):
        read(text.format(c="1" + "0" * 30))


def test_typed_parsing_read_long_chain_is_a_read_error_not_a_recursion_error():
    hier, cats_of, _ = _lexicon()
    h = hier[0]
    xs = sorted(n for n, cs in cats_of.items() if h[0] in cs and len(cs) == 1 and "'s" not in n)
    ys = sorted(n for n, cs in cats_of.items() if h[1] in cs and len(cs) == 1 and "'s" not in n)
    pairs = [(x, y) for x in xs for y in ys][:1500]
    assert len(pairs) == 1500 and 1500 > sys.getrecursionlimit() // 2
    sents = [f"The number of each {pairs[0][0]}'s {pairs[0][1]} equals 3."]
    sents += [f"The number of each {x1}'s {y1} equals each {x0}'s {y0}." for (x0, y0), (x1, y1) in zip(pairs, pairs[1:])]
    text = " ".join(sents) + f" How many {pairs[-1][1]} does {pairs[-1][0]} have?"
    with pytest.raises(ReadError, match="more than 52 letters"):
        read(text)
