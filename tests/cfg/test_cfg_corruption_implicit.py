import numpy as np
import pytest

from cfg_bruteforce import derivations
from tasks.cfg import (accepts, count_parses, flip_tokens, implicit_grammar, load_builtin, parse_text,
                       perturb_subtree, random_bags, sample)

AMB = parse_text("S -> A B | B A | A A A\nA -> a | a b | b\nB -> b a | a | b b a\n", name="amb")


def test_flips_change_exactly_the_marked_positions():
    g = load_builtin("cfg3f")
    b = sample(g, 100, seed=0)
    c = flip_tokens(g, b, 0.15, seed=1)
    assert np.array_equal(c.changed, c.tokens != b.tokens)
    assert abs(c.changed.mean() - 0.15) < 0.01
    assert np.array_equal(flip_tokens(g, b, 0.0, seed=1).tokens, b.tokens)
    with pytest.raises(ValueError, match="gamma"):
        flip_tokens(g, b, 1.5)


@pytest.mark.parametrize("level", [1, 3, 5])
def test_subtree_perturbation_marks_the_new_subtree(level):
    g = load_builtin("cfg3f")
    b = sample(g, 50, seed=2)
    c = perturb_subtree(g, b, level, seed=3)
    for k, (new, pos) in enumerate(zip(c.strings(), c.changed_positions())):
        old = b[k].tokens
        a, z = pos[0], pos[-1] + 1
        assert np.all(np.diff(pos) == 1)                         # one contiguous subtree
        tail = len(new) - z
        assert np.array_equal(new[:a], old[:a]) and np.array_equal(new[z:], old[len(old) - tail:])
    resampled = perturb_subtree(g, b, level, mode="resample", seed=3)
    assert accepts(g, resampled.strings()).all()
    assert accepts(g, c.strings()).mean() < 0.9


def test_implicit_bags_sampling_parsing_probabilities():
    bags = random_bags(2, 3, overlap=True, seed=0)
    ig = implicit_grammar(AMB, bags)
    dist_hidden = derivations(AMB)
    dist_obs = derivations(ig)
    # probability of an observed string = sum over hidden strings of prod of 1/|bag| over compatible tokens
    for obs, (p, _) in list(dist_obs.items())[:200]:
        want = 0
        for hid, (q, _) in dist_hidden.items():
            if len(hid) == len(obs) and all(o in bags[t] for t, o in zip(hid, obs)):
                w = q
                for t in hid:
                    w /= len(bags[t])
                want += w
        assert p == want
    b = sample(ig, 200, seed=1)
    assert accepts(ig, b).all()
    assert all(n >= 1 for n in count_parses(ig, b))
    disjoint = random_bags(2, 3, seed=0)
    assert sorted(o for bag in disjoint for o in bag) == list(range(6))
