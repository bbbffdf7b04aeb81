"""generation: accuracy by membership, entropy and KL against the exact distribution, diversity."""
import math

import pytest
import torch

import analyses
from plm_interp import HookedPLM, preset_config
from tasks.cfg import CFGTask, parse_text

# A finite language of 2 strings of equal probability: a model that puts all mass on them is exact.
TWO = parse_text("""S -> A B
A -> x y | y x
B -> z
x -> a
y -> b
z -> c""", name="two")


class Oracle(HookedPLM):
    """A HookedPLM whose logits are replaced by the grammar's exact next-token distribution."""

    def __init__(self, task):
        super().__init__(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=16, seed=0, task=task.spec()))
        self.task = task

    def forward(self, input, *args, past_kv_cache=None, **kwargs):
        tokens = self.to_tokens(input)
        if past_kv_cache is not None:  # keep the cache's position counter moving, use the full prefix
            self._prefix = tokens if past_kv_cache.length == 0 else torch.cat([self._prefix, tokens], 1)
            super().forward(tokens, past_kv_cache=past_kv_cache)
            tokens = self._prefix
        return _exact_logits(self.task, tokens)


def _exact_logits(task, tokens):
    """log P(next | prefix) for the two-string language, by enumeration."""
    strings = [[1, 4, 5, 6, 2], [1, 5, 4, 6, 2]]  # BOS a b c EOS / BOS b a c EOS (terminal t -> 4 + t)
    out = torch.full((*tokens.shape, task.d_vocab), -30.0)
    for b, row in enumerate(tokens.tolist()):
        for i in range(len(row)):
            nxt = {s[i + 1] for s in strings if s[: i + 1] == row[: i + 1] and i + 1 < len(s)}
            for t in nxt:
                out[b, i, t] = math.log(1 / len(nxt))
            if not nxt:
                out[b, i, 2] = 0.0
    return out


def test_an_exact_model_is_perfect_and_matches_the_true_entropy():
    task = CFGTask(TWO)
    r = analyses.generation(Oracle(task), n=40, cut=1, kl_strings=8, temperature=1.0, progress=False)
    assert r.accuracy == {"cut0": 1.0, "cut1": 1.0}
    assert r.kl < 1e-6
    assert r.entropy_bits_model == pytest.approx(1.0) and r.entropy_bits_truth == pytest.approx(1.0)
    assert r.distinct_strings == 2 / 40   # both strings of the language, and nothing else
    # N^2 / (2 * colliding pairs): with k copies of one string and 40 - k of the other, pairs = C(k,2) + C(40-k,2)
    assert any(r.birthday_support == 40**2 / (2 * (math.comb(k, 2) + math.comb(40 - k, 2))) for k in range(1, 40))


def test_greedy_exact_model_collides_on_every_pair():
    """At temperature 0 every cut0 sample is the same string: exactly C(40, 2) colliding pairs, one distinct."""
    task = CFGTask(TWO)
    r = analyses.generation(Oracle(task), n=40, cut=1, kl_strings=8, temperature=0.0, progress=False)
    assert r.accuracy == {"cut0": 1.0, "cut1": 1.0}
    assert r.distinct_strings == 1 / 40 and r.birthday_support == 40**2 / (2 * math.comb(40, 2))


def test_a_random_model_is_far_from_the_language():
    task = CFGTask("demo")
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=96, seed=0, task=task.spec()))
    r = analyses.generation(model, n=16, cut=5, kl_strings=8, progress=False)
    assert r.accuracy["cut0"] < 0.2
    assert r.kl > 0.1
    assert {row["metric"] for row in r.rows()} >= {"accuracy cut0 %", "KL(truth || model) nats/pos"}


def test_bad_input():
    task = CFGTask("demo")
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=96, seed=0))
    with pytest.raises(ValueError, match="n = 0"):
        analyses.generation(model, task, n=0)
    with pytest.raises(ValueError, match="'cfg' task"):
        analyses.generation(model, {"kind": "igsm", "preset": "small"})
