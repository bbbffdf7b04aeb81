"""Sampler and parser against brute-force enumeration of all derivations (cfg_bruteforce.py)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import chisquare

from cfg_bruteforce import derivations
from tasks.cfg import accepts, count_parses, load_builtin, parse, parse_text, random_grammar, sample

SMALL = [
    random_grammar(sizes=(1, 2, 2, 2), rules_per_nt=(1, 2), rule_len=(1, 3), seed=s) for s in (0, 1, 2)
] + [parse_text("S -> A B | B A | A A A\nA -> a | a b | b\nB -> b a | a | b b a\n", name="amb")]


def _enum(g):
    return derivations(g)


@pytest.mark.parametrize("g", SMALL, ids=lambda g: g.name)
def test_sampler_matches_exact_distribution(g):
    dist = _enum(g)
    batch = sample(g, 20000, seed=11)
    strings = [tuple(s.tolist()) for s in batch.strings()]
    keys = sorted(dist)
    index = {k: i for i, k in enumerate(keys)}
    assert all(s in index for s in strings)
    obs = np.bincount([index[s] for s in strings], minlength=len(keys)).astype(float)
    exp = np.array([float(dist[k][0]) for k in keys]) * len(strings)
    big = exp >= 5                                     # pool rare strings into one cell
    obs = np.r_[obs[big], obs[~big].sum()]
    exp = np.r_[exp[big], exp[~big].sum()]
    keep = exp > 0
    assert chisquare(obs[keep], exp[keep]).pvalue > 1e-4


def test_labels_are_consistent_with_the_tree():
    g = load_builtin("cfg3f")
    batch = sample(g, 50, seed=3)
    dist_ok = True
    for k in range(len(batch)):
        lab = batch[k]
        n = len(lab)
        for lvl in range(g.depth):
            p = lab.p[:, lvl]
            assert p[0] == 0 and np.all(np.diff(p) >= 0) and np.all(np.diff(p) <= 1)
            assert np.array_equal(lab.b[:, lvl], np.r_[p[1:] != p[:-1], True])
            # each level-l subtree has one symbol, nested inside one level-(l-1) subtree
            for q in np.unique(p):
                assert len(set(lab.s[p == q, lvl])) == 1
                if lvl:
                    assert len(set(lab.p[p == q, lvl - 1])) == 1
        assert lab.b[-1].all() and n == len(lab.tokens)
        bs = lab.b_sharp
        for i in range(n):
            ends = np.nonzero(lab.b[i])[0]
            assert bs[i] == (ends.min() if len(ends) else -1)
    assert dist_ok


def test_subtrees_derive_their_spans():
    """Every labelled level-l subtree's tokens are derivable from its symbol (checked by brute force)."""
    g = parse_text("S -> A B | B A | A A A\nA -> a | a b | b\nB -> b a | a | b b a\n")
    from cfg_bruteforce import derivations as enum
    from tasks.cfg import subgrammar
    batch = sample(g, 200, seed=5)
    for k in range(len(batch)):
        lab = batch[k]
        for lvl in range(g.depth):
            for q in np.unique(lab.p[:, lvl]):
                idx = lab.p[:, lvl] == q
                sub = subgrammar(g, lvl, int(lab.s[idx, lvl][0]))
                assert tuple(lab.tokens[idx].tolist()) in enum(sub)


def test_sampler_is_seeded():
    g = load_builtin("demo")
    a, b, c = sample(g, 30, seed=1), sample(g, 30, seed=1), sample(g, 30, seed=2)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.p, b.p)
    assert not np.array_equal(a.tokens[:50], c.tokens[:50])
    with pytest.raises(ValueError, match="n must be"):
        sample(g, -1)


@pytest.mark.parametrize("g", SMALL, ids=lambda g: g.name)
def test_membership_and_counts_vs_bruteforce(g):
    dist = _enum(g)
    lo, hi = g.length_range()
    rng = np.random.default_rng(0)
    # every string of the language, plus random strings and all single-token substitutions of members
    cands = set(dist)
    for n in range(max(1, lo - 1), hi + 2):
        for _ in range(30):
            cands.add(tuple(rng.integers(0, g.n_terminals, n).tolist()))
    for s in list(dist)[:40]:
        for i in range(len(s)):
            for t in range(g.n_terminals):
                cands.add(s[:i] + (t,) + s[i + 1:])
    cands = sorted(cands)
    got_acc = accepts(g, [list(c) for c in cands])
    got_cnt = count_parses(g, [list(c) for c in cands])
    for c, a, n in zip(cands, got_acc, got_cnt):
        truth = dist.get(c, (0, 0))[1]
        assert a == (truth > 0) and n == truth, (c, a, n, truth)


def test_parse_tree_equals_sampler_labels_when_unique():
    for name in ("demo", "cfg3b", "cfg3f"):
        g = load_builtin(name)
        batch = sample(g, 40, seed=9)
        trees, counts = parse(g, batch), count_parses(g, batch)
        assert all(c >= 1 for c in counts)
        for k in range(len(batch)):
            t = trees[k]
            assert t is not None and np.array_equal(t.tokens, batch[k].tokens)
            if counts[k] == 1:
                assert t.equals(batch[k])
        if name == "cfg3b":
            assert all(c == 1 for c in counts)        # PAPERS: cfg3b samples parse uniquely


def test_parse_tree_of_ambiguous_string_is_valid():
    g = SMALL[-1]
    batch = sample(g, 300, seed=2)
    counts = count_parses(g, batch)
    trees = parse(g, batch)
    assert max(counts) > 1
    from cfg_bruteforce import derivations as enum
    from tasks.cfg import subgrammar
    for k in np.nonzero(np.array(counts) > 1)[0][:20]:
        lab = trees[k]
        for lvl in range(g.depth):
            for q in np.unique(lab.p[:, lvl]):
                idx = lab.p[:, lvl] == q
                assert tuple(lab.tokens[idx].tolist()) in enum(subgrammar(g, lvl, int(lab.s[idx, lvl][0])))


def test_cfg3f_sample_ambiguity_rate():
    counts = count_parses(load_builtin("cfg3f"), sample(load_builtin("cfg3f"), 300, seed=0))
    assert 0.2 < np.mean(np.array(counts) > 1) < 0.45      # PAPERS: about 1/3 ambiguous


def test_parser_rejects_bad_input():
    g = load_builtin("demo")
    with pytest.raises(ValueError, match=r"strings\[1\] holds token 7"):
        accepts(g, [[0, 1], [7]])
    assert not accepts(g, [[]])[0]


DEMO = load_builtin("demo")
_DEMO_LANG_CACHE = {}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), gamma=st.floats(0.0, 1.0))
def test_property_samples_accepted_and_flips_checked(seed, gamma):
    from tasks.cfg import flip_tokens
    batch = sample(DEMO, 8, seed=seed)
    assert accepts(DEMO, batch).all()
    bad = flip_tokens(DEMO, batch, gamma, seed=seed)
    # the parser's verdict on corrupted strings equals an independent check on the small subgrammar levels:
    # a string is accepted iff it has at least one parse, and re-parsing the tree's yield reproduces it
    acc = accepts(DEMO, bad.strings())
    trees = parse(DEMO, bad.strings())
    for a, t, s in zip(acc, trees, bad.strings()):
        assert a == (t is not None)
        if t is not None:
            assert np.array_equal(t.tokens, s)


SMALL_LANG = derivations(SMALL[-1])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), pos=st.integers(0, 100), tok=st.integers(0, 1))
def test_property_single_point_corruptions(seed, pos, tok):
    g = SMALL[-1]
    s = sample(g, 1, seed=seed).tokens.tolist()
    s2 = list(s)
    s2[pos % len(s)] = tok
    assert accepts(g, [s])[0]
    assert accepts(g, [s2])[0] == (tuple(s2) in SMALL_LANG)      # leaving the language is always rejected
