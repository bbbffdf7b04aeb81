"""Generator: values, answers and op counts re-derived from the *text* by brute force; split; reproducibility."""
import random
from collections import Counter

import pytest

from igsm_reference import Reference
from tasks.igsm import PRESETS, IGSMConfig, generate, reask
from tasks.igsm.hierarchy import load_hierarchy
from tasks.igsm.solution import template_hash


@pytest.mark.parametrize("preset", ["small", "med", "hard"])
def test_text_reparses_to_the_same_answer_and_op(preset):
    cfg = PRESETS[preset]
    rng = random.Random(7)
    for _ in range(60):
        p = generate(cfg, rng)
        ref = Reference(p)
        assert ref.answer() == p.answer
        assert ref.n_op() == p.op <= cfg.op_max
        assert len(ref.formulas) == p.ip <= cfg.ip_max
        # every stated parameter value, not only the query
        for a, (x, y) in [(a, (p.structure.names[a[1]][a[2]], p.structure.names[a[1] + 1][a[3]]))
                          for a in p.graph.formulas]:
            assert ref.value((x, y)) % cfg.modulus == p.graph.values[a]


@pytest.mark.parametrize("preset,op", [("med", 15), ("med", 23), ("hard", 21), ("hard", 32), ("small", 4)])
def test_forced_op_is_exact(preset, op):
    cfg = PRESETS[preset].with_(op=op, split="test")
    rng = random.Random(op)
    for _ in range(15):
        p = generate(cfg, rng)
        assert Reference(p).n_op() == op
        assert p.split == "test"


def test_op_distribution_is_min_of_two_uniforms():
    M, n = 15, 3000
    rng = random.Random(0)
    counts = Counter(generate(PRESETS["med"], rng).op for _ in range(n))
    for k in range(1, M + 1):
        expect = n * (2 * (M - k) + 1) / M**2
        assert abs(counts[k] - expect) < 5 * expect**0.5 + 3, (k, counts[k], expect)


def test_unnecessary_parameters_exist_and_some_depend_on_necessary_ones():
    rng = random.Random(3)
    n_unnec = n_dep_on_nece = n_early = 0
    for _ in range(200):
        p = generate(PRESETS["med"], rng)
        nece = set(p.necessary)
        for a, f in p.graph.formulas.items():
            if a not in nece:
                n_unnec += 1
                n_dep_on_nece += any(x in nece for x in p.graph.parents(a))
        # a query about an item without children needs no sentence at all (the authors' zero totals)
        first_nece = min((i for i, a in enumerate(p.sentence_order) if a in nece), default=len(p.sentence_order))
        n_early += any(a not in nece for a in p.sentence_order[:first_nece])
    assert n_unnec > 200 and n_dep_on_nece > 20 and n_early > 20


def test_reproducible_and_seed_sensitive():
    a = [generate(PRESETS["med"], random.Random(5)).text for _ in range(2)]
    assert a[0] == a[1]
    assert generate(PRESETS["med"], random.Random(6)).text != a[0]


def test_template_hash_split():
    rng = random.Random(11)
    train = [generate(PRESETS["med"], rng) for _ in range(100)]
    test = [generate(PRESETS["med"].with_(split="test"), rng) for _ in range(100)]
    assert all(p.bucket < 17 and template_hash(p.steps, p.graph) == p.bucket for p in train)
    assert all(p.bucket >= 17 for p in test)
    custom = PRESETS["small"].with_(hash_modulus=5, train_buckets=2)
    assert all(generate(custom, rng).bucket < 2 for _ in range(30))


def test_pq_qp_and_shuffles():
    for fmt in ("pq", "qp"):
        for shuffle in ("random", "topological", "none"):
            p = generate(PRESETS["med"].with_(fmt=fmt, shuffle=shuffle), random.Random(1))
            assert p.problem_text.startswith("How many") == (fmt == "qp")
            assert Reference(p).answer() == p.answer
            if shuffle != "random":  # every parent is stated before its child
                seen = set()
                for a in p.sentence_order:
                    assert all(x in seen or x[0] == 1 for x in p.graph.parents(a))
                    seen.add(a)


def test_reask_asks_another_parameter():
    rng = random.Random(2)
    for _ in range(30):
        p = generate(PRESETS["med"], rng)
        r = reask(p, rng)
        assert r.query != p.query and r.problem_sentences() == p.problem_sentences()
        ref = Reference(r)
        assert ref.answer() == r.answer and ref.n_op() == r.op


@pytest.mark.parametrize("field,value", [("modulus", 1), ("op_max", 0), ("ip_max", 1), ("fmt", "xy"),
                                         ("shuffle", "all"), ("split", "dev"), ("train_buckets", 23),
                                         ("op", 0), ("op_max", 500), ("letters", 0), ("letters", 53),
                                         ("letter_order", "abc")])
def test_bad_config_names_field_and_value(field, value):
    with pytest.raises(ValueError, match=f"'{field}' = {value!r}"):
        IGSMConfig(**{field: value})


def test_empty_hierarchy_raises(tmp_path):
    f = tmp_path / "h.json"
    f.write_text('{"hierarchies": [], "categories": {}}')
    with pytest.raises(ValueError, match="'hierarchies' is empty"):
        load_hierarchy(f)


def test_other_modulus():
    cfg = PRESETS["small"].with_(modulus=7)
    rng = random.Random(0)
    for _ in range(30):
        p = generate(cfg, rng)
        assert Reference(p).answer() == p.answer < 7


def test_letter_pool():
    """``letters=k`` draws solution letters from the first k of a-z A-Z, fresh within a solution; the default is
    the paper's 52 and leaves the random stream as it was; the answer re-derived from the text is unchanged."""
    import re

    from tasks.igsm.solution import LETTERS

    cfg = PRESETS["tiny"].with_(letters=6)
    rng = random.Random(3)
    seen = set()
    for _ in range(80):
        p = generate(cfg, rng)
        defined = re.findall(r"(?:\bas |; )([A-Za-z])(?=;| =)", p.solution_text)  # step letters and temporaries
        assert len(defined) == len(p.steps) + sum(len(s.temps) for s in p.steps)
        assert len(defined) == len(set(defined)) and set(defined) <= set(LETTERS[:6])
        assert Reference(p).answer() == p.answer
        seen |= set(defined)
    assert seen == set(LETTERS[:6])
    a, b = random.Random(5), random.Random(5)
    assert [generate(PRESETS["tiny"], a).text for _ in range(5)] == \
           [generate(PRESETS["tiny"].with_(letters=52), b).text for _ in range(5)]


def test_sequential_letters_are_a_b_c_in_order_of_definition():
    import re

    from tasks.igsm.solution import LETTERS

    cfg = PRESETS["small"].with_(letter_order="sequential")
    rng = random.Random(4)
    for _ in range(40):
        p = generate(cfg, rng)
        for sol in (p.solution_text, reask(p, rng).solution_text):
            defined = re.findall(r"(?:\bas |; )([A-Za-z])(?=;| =)", sol)  # step letters and temporaries
            assert defined and defined == list(LETTERS[: len(defined)])
        assert Reference(p).answer() == p.answer
