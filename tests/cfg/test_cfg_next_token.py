"""Exact next-token distribution against two independent Fraction references."""
import numpy as np
import pytest
import torch

from cfg_bruteforce import derivations, next_token_by_prefix_inside, next_token_from_enumeration
from tasks.cfg import (entropy_bits, implicit_grammar, kl_to_truth, load_builtin, next_token_logprobs, parse_text,
                       position_entropy_bits, random_bags, random_grammar, sample)

SMALL = [random_grammar(sizes=(1, 2, 2, 2), rules_per_nt=(1, 2), rule_len=(1, 3), seed=s) for s in (0, 1)] + [
    parse_text("S -> A B | B A | A A A\nA -> a | a b | b\nB -> b a | a | b b a\n", name="amb")]


def _close(got, want_rows, rtol=1e-9):
    for i, row in want_rows:
        want = np.array([float(v) for v in row])
        g = np.exp(got[i])
        assert np.allclose(g, want, rtol=rtol, atol=0), (i, g, want)


@pytest.mark.parametrize("g", SMALL + [implicit_grammar(SMALL[2], random_bags(2, 2, overlap=True, seed=0))],
                         ids=lambda g: g.name)
def test_matches_enumeration(g):
    dist = derivations(g)
    batch = sample(g, 25, seed=4)
    tables = next_token_logprobs(g, batch)
    for k, x in enumerate(batch.strings()):
        _close(tables[k], enumerate(next_token_from_enumeration(dist, x.tolist(), g.n_terminals)))


def test_matches_prefix_inside_on_demo():
    g = load_builtin("demo")
    batch = sample(g, 2, seed=0)
    tables = next_token_logprobs(g, batch)
    for k, x in enumerate(batch.strings()):
        rows = next_token_by_prefix_inside(g, x.tolist(), range(len(x) + 1))
        _close(tables[k], rows.items())


@pytest.mark.slow
def test_matches_prefix_inside_on_short_cfg3b():
    g = load_builtin("cfg3b")
    batch = sample(g, 200, seed=0)
    k = int(np.argmin(batch.lengths))
    x = batch.strings()[k].tolist()
    table = next_token_logprobs(g, [x])[0]
    rows = next_token_by_prefix_inside(g, x, [0, 1, 5, len(x) // 2, len(x) - 1, len(x)])
    _close(table, rows.items())


@pytest.mark.parametrize("name", ["demo", "cfg3f", "cfg3e2"])
def test_rows_normalised_and_true_tokens_positive(name):
    g = load_builtin(name)
    batch = sample(g, 20, seed=1)
    for x, tab in zip(batch.strings(), next_token_logprobs(g, batch)):
        assert tab.shape == (len(x) + 1, g.n_terminals + 1)
        assert np.allclose(np.exp(tab).sum(1), 1.0, atol=1e-12)
        assert np.all(np.isfinite(tab[np.arange(len(x)), x])) and np.isfinite(tab[-1, -1])
        assert np.all(np.exp(tab[:-1, -1]) < 1)


def test_invalid_prefix_rows_are_nan():
    g = SMALL[2]
    tab = next_token_logprobs(g, [[1, 1, 1, 1, 1, 1, 1, 1]])[0]
    assert np.isnan(tab[-1]).all()


def test_entropy_and_kl_helpers():
    g = SMALL[2]
    dist = derivations(g)
    x = sample(g, 1, seed=3).strings()[0]
    tab = next_token_logprobs(g, [x])[0]
    assert entropy_bits(tab, x) == pytest.approx(-np.log2(float(dist[tuple(x.tolist())][0])), rel=1e-9)
    p = np.exp(tab)
    assert kl_to_truth(torch.tensor(p), tab) == pytest.approx(0.0, abs=1e-12)
    q = np.full_like(p, 1 / p.shape[1])
    eps = 1e-5
    ps, qs = (p + eps) / (1 + eps * p.shape[1]), (q + eps) / (1 + eps * p.shape[1])
    assert kl_to_truth(q, tab) == pytest.approx(np.mean((ps * np.log(ps / qs)).sum(1)), rel=1e-12)
    assert position_entropy_bits(np.array([[0.5, 0.5, 0.0]]))[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        kl_to_truth(q[:, :2], tab)
