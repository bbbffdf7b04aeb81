import json

import pytest

from tasks.cfg import (BUILTINS, Grammar, GrammarError, from_authors_json, load, load_builtin, parse_text,
                       random_grammar, to_text)

# PAPERS.md "Part 1": symbols per level, rules, min-max length
TABLE = {
    "cfg3b": ([1, 3, 3, 3, 3, 3, 3], 32, (138, 432)), "cfg3i": ([1, 3, 3, 3, 3, 3, 3], 32, (114, 564)),
    "cfg3h": ([1, 3, 3, 3, 3, 3, 3], 39, (97, 459)), "cfg3g": ([1, 3, 3, 3, 3, 3, 3], 48, (80, 729)),
    "cfg3f": ([1, 3, 3, 3, 3, 3, 3], 54, (64, 729)), "cfg3e1": ([1, 3, 9, 27, 81, 27, 9], 444, (66, 557)),
    "cfg3e2": ([1, 3, 9, 27, 27, 9, 4], 228, (82, 645)),
    "cfg3j": ([1, 3, 3, 3, 3, 3, 3, 3], 57, None), "cfg3k": ([1, 3, 3, 3, 3, 3, 3, 3], 68, None),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_builtins_match_papers_table(name):
    g = load_builtin(name)
    sizes, n_rules, lengths = TABLE[name]
    assert g.sizes == sizes and g.n_rules == n_rules
    if lengths:
        assert g.length_range() == lengths


def test_builtin_rules_equal_the_authors_file():
    raw = json.load(open(__import__("tasks.cfg.loading", fromlist=["x"]).BUILTIN_DIR / "cfg3f.json"))
    g = load_builtin("cfg3f")
    for lvl in range(g.depth):
        assert [list(map(list, r)) for r in g.rules[lvl]] == [s["children"] for s in raw["all"][lvl]]


def test_demo_is_small():
    lo, hi = load_builtin("demo").length_range()
    assert 10 <= lo and hi <= 100


@pytest.mark.parametrize("name", BUILTINS)
def test_text_and_json_roundtrip(name, tmp_path):
    g = load_builtin(name)
    assert parse_text(to_text(g)) == g
    g.save(tmp_path / "g.txt")
    g.save(tmp_path / "g.json")
    assert load(tmp_path / "g.txt") == g and load(tmp_path / "g.json") == g
    assert Grammar.from_dict(json.loads(json.dumps(g.to_dict()))) == g


def test_text_format_infers_levels_and_orders():
    g = parse_text("S -> A B | B A\nA -> x y | y\nB -> y x x\n")
    assert g.names == (("S",), ("A", "B"), ("x", "y"))
    assert g.rules[0] == (((0, 1), (1, 0)),)
    assert g.rules[1] == (((0, 1), (1,)), ((1, 0, 0),))
    g2 = parse_text("S -> A\nA -> x y\nterminals: y x\n")
    assert g2.terminals == ("y", "x") and g2.rules[1] == (((1, 0),),)


@pytest.mark.parametrize("text, needle", [
    ("S -> A B\nA -> x\n", "'B'"),                          # B undefined, used at NT level -> not layered
    ("S -> A\nA -> x\nC -> x\n", "'C'"),                     # unreachable
    ("S -> A | \nA -> x\n", "empty"),
    ("S -> A A A A\nA -> x\n", "too long"),
    ("S -> A x\nA -> x\n", "layered"),
    ("S -> A\nA -> S\n", "layered"),                          # a cycle cannot be layered
    ("S -> A\nA -> x\nA -> y\n", "twice"),
    ("S -> A\n[level 2]\nA -> x\n", "level 2"),
    ("S -> A | A\nA -> x\n", "same rule twice"),
    ("", "no rules"),
    ("S A B\n", "expected"),
])
def test_malformed_text_names_the_culprit(text, needle):
    with pytest.raises(GrammarError, match=needle):
        parse_text(text)
    assert issubclass(GrammarError, ValueError)


def test_malformed_structures():
    with pytest.raises(GrammarError, match="undefined symbol index 5"):
        Grammar(names=[["S"], ["a"]], rules=[[[[5]]]])
    with pytest.raises(GrammarError, match="'AA'"):
        from_authors_json({"all": [[{"name": "R", "children": [[0]]}], [{"name": "AA", "children": [[0]]}]]})
    with pytest.raises(GrammarError, match="not a built-in"):
        load_builtin("cfg9z")


def test_random_grammar_knobs_and_seed():
    kw = dict(sizes=(1, 3, 4, 5), rules_per_nt=(2, 3), rule_len=(2, 3), distinct_symbols=True, seed=7)
    g = random_grammar(**kw)
    assert g == random_grammar(**kw) and g != random_grammar(**{**kw, "seed": 8})
    assert g.sizes == [1, 3, 4, 5]
    for lvl in g.rules:
        seen = set()
        for sym in lvl:
            assert 2 <= len(sym) <= 3
            for r in sym:
                assert 2 <= len(r) <= 3 and len(set(r)) == len(r) and r not in seen
                seen.add(r)
    with pytest.raises(GrammarError, match="rule_len"):
        random_grammar(rule_len=(0, 4))
