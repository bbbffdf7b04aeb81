"""Reading the authors' problems (tests/igsm/data, 1,500 from their generator): every problem reads, its official
solution verifies, answer and op equal the file's (their generator's own ground truth), texts tokenize and
round-trip, and corrupted solutions are rejected with the right error kind."""
import json
import random
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest

from tasks.igsm import PRESETS, ReadError, generate, get_tokenizer, read, true_labels, verify
from tasks.igsm.tokenizer import Tokenizer

DATA = Path(__file__).with_name("data") / "authors_sample.jsonl"


@lru_cache(maxsize=1)
def rows():
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


@lru_cache(maxsize=1)
def read_all():
    return [read(r["problem"], r["solution"]) for r in rows()]


def test_every_authors_problem_reads_and_its_solution_verifies():
    probs = read_all()
    assert len(probs) == 1500
    assert [p.answer for p in probs] == [r["answer"] for r in rows()]
    assert [p.op for p in probs] == [r["op"] for r in rows()]
    for p, r in zip(probs, rows()):
        assert p.problem_text == " ".join(r["problem"].split())  # our rendering of what we read is their text
        rep = verify(p, r["solution"] + f" <ANS> {r['answer']} <EOS>")
        assert rep.correct and rep.unnecessary_ops == 0, (rep.error_kind, rep.message)
        assert verify(read(r["problem"]), r["solution"], answer=r["answer"]).correct  # without the solution too


def test_authors_texts_tokenize_and_round_trip():
    tok = get_tokenizer(23)
    for r in rows():
        for text in (r["problem"], r["solution"]):
            text = " ".join(text.split())
            assert tok.decode(tok.encode(text)) == text
    # a name in two categories of one hierarchy (Product and Ingredient): two items, told apart by their partners
    text = ("The number of each Popcorn's Popcorn equals 3. The number of each Walmart's Popcorn equals 2. "
            "How many Ingredient does Walmart have?")
    p = read(text)
    assert p.answer == 6 and p.structure.names[1:] == [["Popcorn"], ["Popcorn"]]
    assert tok.decode(tok.encode(text)) == text


def _sentences(solution):
    return [s for s in re.split(r"(?<=\.) (?=Define )", solution.strip()) if s]


def corrupt_counts():
    """Per error kind: (rejected with that kind, tried)."""
    out: Counter = Counter()
    rng = random.Random(0)
    for p, r in zip(read_all(), rows()):
        sents = _sentences(r["solution"])
        ans = f" <ANS> {r['answer']} <EOS>"
        # one number changed: the result of a random sentence
        t = rng.randrange(len(sents))
        head, last = sents[t][:-1].rsplit(" ", 1)
        const_only = re.search(r"so \w = \d+$", sents[t][:-1]) is not None
        bad = sents[:t] + [f"{head} {(int(last) + 1) % 23}."] + sents[t + 1:]
        kind = "wrong_value" if const_only else "wrong_arithmetic"
        rep = verify(p, " ".join(bad) + ans)
        out[kind, "tried"] += 1
        out[kind, "caught"] += (rep.error_kind, rep.error_step) == (kind, t)
        # one operand value changed inside a calculation "a + b = 3 + 4 = 7"
        calc = [(u, m) for u, s in enumerate(sents) for m in re.finditer(r"= (\d+) ([-+*]) \d+ =", s)]
        if calc:
            u, m = calc[rng.randrange(len(calc))]
            s = sents[u]
            s = s[: m.start(1)] + str((int(m.group(1)) + 1) % 23) + s[m.end(1):]
            rep = verify(p, " ".join(sents[:u] + [s] + sents[u + 1:]) + ans)
            out["wrong_operand_value", "tried"] += 1
            out["wrong_operand_value", "caught"] += (rep.error_kind, rep.error_step) == ("wrong_operand_value", u)
        # two dependent sentences swapped: a later sentence that uses an earlier one moves before it
        order = p.graph.order
        pairs = [(a, b) for b in range(len(order)) for a in range(b) if order[a] in p.graph.parents(order[b])]
        if pairs:
            a, b = pairs[rng.randrange(len(pairs))]
            sw = list(sents)
            sw[a], sw[b] = sw[b], sw[a]
            rep = verify(p, " ".join(sw) + ans)
            out["not_ready", "tried"] += 1
            out["not_ready", "caught"] += (rep.error_kind, rep.error_step) == ("not_ready", a)
        # wrong final answer
        rep = verify(p, r["solution"] + f" <ANS> {(r['answer'] + 1) % 23} <EOS>")
        out["wrong_answer", "tried"] += 1
        out["wrong_answer", "caught"] += rep.error_kind == "wrong_answer"
    return out


def test_corrupted_authors_solutions_are_rejected_with_the_right_kind():
    c = corrupt_counts()
    for kind in ("wrong_value", "wrong_arithmetic", "wrong_operand_value", "not_ready", "wrong_answer"):
        assert c[kind, "tried"] > 100 and c[kind, "caught"] == c[kind, "tried"], (kind, c)


def test_qp_and_shuffled_sentences_read_the_same():
    rng = random.Random(1)
    for p, r in list(zip(read_all(), rows()))[::25]:
        sents = re.split(r"(?<=[.?]) ", r["problem"].strip())
        body, q = sents[:-1], sents[-1]
        rng.shuffle(body)
        qp = read("  " + q + "   " + " ".join(body))
        assert (qp.fmt, qp.answer, qp.op, len(qp.necessary)) == ("qp", p.answer, p.op, len(p.necessary))


def test_our_problems_read_back_and_keep_their_probe_labels():
    rng = random.Random(2)
    tok = get_tokenizer(23)
    for _ in range(40):
        p = generate(PRESETS["med"], rng)
        r = read(p.problem_text, p.solution_text)
        assert (r.answer, r.op, r.problem_text) == (p.answer, p.op, p.problem_text)
        assert verify(r, p.solution_text, answer=p.answer).correct
        lp, lr = true_labels(p, tok), true_labels(r, tok)
        name_p = [p.structure.param_name(a) for a in lp.params]
        name_r = [r.structure.param_name(a) for a in lr.params]
        assert (lp.pos_dep, lp.pos_nece) == (lr.pos_dep, lr.pos_nece)
        # the text cannot show a top-layer item without children that the question does not name: only the
        # totals of such items ("X's <Category>" = 0) are missing from what we read
        assert set(name_r) <= set(name_p)
        missing = [a for a, n in zip(lp.params, name_p) if n not in set(name_r)]
        st = p.structure
        assert all(a[0] == 1 and a[1] == 0 and not st.children[0][a[2]] and a[1:3] != p.query[1:3] for a in missing)
        at_p = {n: t for t, n in enumerate(name_p)}
        perm = [at_p[n] for n in name_r]
        assert (lp.nece[perm] == lr.nece).all() and (lp.dep[perm][:, perm] == lr.dep).all()


P = "The number of each Walmart's Popcorn equals 5."


@pytest.mark.parametrize("text,match", [
    ("", "empty"),
    (P, "expected one question"),
    (f"{P} How many Popcorn does Walmart have? How many Popcorn does Walmart have?", "found 2"),
    (f"{P} How many Popcorn does Walmart have", "final '.' or '?'"),
    (f"The number of each Foo's Bar equals 5. How many Bar does Foo have?", r"sentence 1 .*expected 'each <item>"),
    (f"{P} The number of each Walmart's Popcorn equals 5 more then each Walmart's Popcorn. How many Popcorn "
     f"does Walmart have?", r"sentence 2 .*expected a number"),
    (f"The number of each Walmart's Popcorn equals each Walmart's Basil. How many Popcorn does Walmart have?",
     "fits 0 layer"),
    (f"{P} The number of each Walmart's Popcorn equals 3. How many Popcorn does Walmart have?", "stated twice"),
    (f"The number of each Walmart's Popcorn equals each Walmart's Cheese. How many Popcorn does Walmart have?",
     "which no sentence states"),
    (f"The number of each Walmart's Popcorn equals each Walmart's Cheese. The number of each Walmart's Cheese "
     f"equals each Walmart's Popcorn. How many Popcorn does Walmart have?", "a cycle"),
    (f"{P} Walmart has many things. How many Popcorn does Walmart have?", r"sentence 2 .*expected 'The number"),
])
def test_malformed_text_names_the_sentence_and_what_was_expected(text, match):
    with pytest.raises(ReadError, match=match):
        read(text)


def test_a_wrong_solution_is_refused_by_read():
    r = rows()[3]
    bad = r["solution"].replace(" = ", " =  ", 1)  # still well formed ...
    assert read(r["problem"], bad).answer == r["answer"]
    sents = _sentences(r["solution"])
    with pytest.raises(ReadError, match="does not verify: wrong_answer"):
        read(r["problem"], " ".join(sents) + f" <ANS> {(r['answer'] + 1) % 23}")
