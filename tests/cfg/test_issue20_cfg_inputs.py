"""Issue 20, finding 6: the CFG parser and grammar loaders take exactly what they document.

Each test reproduces one finding of the bad-input campaign (it failed before the fix)."""
import json

import numpy as np
import pytest

from tasks.cfg import GrammarError, accepts, count_parses, from_authors_json, load, load_builtin, parse, sample


@pytest.fixture(scope="module")
def demo():
    return load_builtin("demo")


def test_issue20_6_float_tokens_refused(demo):
    s = sample(demo, 1, seed=0)
    good = [int(t) for t in s.tokens]
    assert accepts(demo, [good]).tolist() == [True]
    # before: [t + 0.9 ...] was truncated to the same ids and accepted
    with pytest.raises(ValueError, match=r"strings\[0\].*integers"):
        accepts(demo, [[t + 0.9 for t in good]])
    with pytest.raises(ValueError, match=r"integers"):
        accepts(demo, [np.asarray(good, dtype=np.float64)])


def test_issue20_6_bool_tokens_refused(demo):
    with pytest.raises(ValueError, match=r"strings\[1\].*True.*bool"):
        accepts(demo, [[0, 1], [True, False]])
    with pytest.raises(ValueError, match=r"integers"):
        count_parses(demo, [np.array([True, False])])


def test_issue20_6_flat_list_and_flat_array_refused_alike(demo):
    s = [int(t) for t in sample(demo, 1, seed=1).tokens]
    # before: a flat list was read as len(s) strings of length 1, a flat array was refused
    for flat in (s, np.asarray(s)):
        with pytest.raises(ValueError, match="wrap a single string in a list"):
            accepts(demo, flat)
        with pytest.raises(ValueError, match="wrap a single string in a list"):
            parse(demo, flat)
    # the documented batch forms agree: list of lists, list of arrays, 2-d array
    assert accepts(demo, [s]).tolist() == accepts(demo, [np.asarray(s)]).tolist() == \
        accepts(demo, np.asarray([s])).tolist() == [True]


def test_issue20_6_empty_batch_and_empty_string(demo):
    assert accepts(demo, []).tolist() == []
    assert accepts(demo, [[]]).tolist() == [False]


def _authors(children_root, n_mid=2):
    """A 3-level grammar in the authors' JSON layout: root -> mids -> terminals a, b."""
    return {"all": [[{"name": "S", "children": children_root}],
                    [{"name": f"M{i}", "children": [[0, 1], [1]]} for i in range(n_mid)],
                    [{"name": "a"}, {"name": "b"}]]}


def test_issue20_6_authors_json_unreachable_is_strict_by_default(tmp_path):
    d = _authors([[0, 0]])        # M1 is never used
    with pytest.raises(GrammarError, match="unreachable"):
        from_authors_json(d)
    p = tmp_path / "g.json"
    p.write_text(json.dumps(d))
    with pytest.raises(GrammarError, match="unreachable"):
        load(p)
    assert load(p, allow_unreachable=True).allow_unreachable
    d["allow_unreachable"] = True          # a file may declare it; it is never inferred
    assert from_authors_json(d).allow_unreachable
    assert from_authors_json(d, allow_unreachable=True).names[1] == ("M0", "M1")
    # the authors' cfg3e1 is shipped with unreachable NTs and still loads; cfg3b stays strict
    assert load_builtin("cfg3e1").allow_unreachable and not load_builtin("cfg3b").allow_unreachable


@pytest.mark.parametrize("child", [0.7, True, "0", None])
def test_issue20_6_non_integer_child_index_refused(child):
    # before: 0.7 became child 0 and True became 1
    with pytest.raises(GrammarError, match=r"child .* integer indices"):
        from_authors_json(_authors([[child, 1]]))


def test_issue35_bad_grammar_names_are_refused_by_name(tmp_path):
    """``task.grammar=""`` or a directory gave IsADirectoryError tracebacks; a non-UTF-8 file a UnicodeDecodeError."""
    from tasks.cfg.grammar import GrammarError
    from tasks.cfg.loading import resolve

    for bad, words in (("", "is empty"), (str(tmp_path), "is a directory")):
        with pytest.raises(GrammarError, match=words):
            resolve(bad)
    (tmp_path / "g.txt").write_bytes(b"\xff\xfe S -> a")
    with pytest.raises(GrammarError, match="g.txt.*does not read"):
        resolve(str(tmp_path / "g.txt"))
