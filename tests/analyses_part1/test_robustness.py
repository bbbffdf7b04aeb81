"""robustness: one row per rate x temperature; rate 0 is plain cut-prefix accuracy; the clean prefix is what gets
parsed; bad input is refused before any generation."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import analyses
from analyses.robustness import long_strings
from plm_interp import HookedPLM, preset_config
from tasks.cfg import CFGTask
from tasks.cfg.tokenizer import BOS, EOS, N_SPECIAL

PREFIX = 12


def _model(task, **kw):
    fields = dict(d_vocab=task.d_vocab, n_ctx=96, positional="rot", seed=0, task=task.spec())
    fields.update(kw)
    return HookedPLM(preset_config("tiny", **fields)).eval()


class Oracle:
    """A stand-in 'model' that ignores its prompt and continues each row with the rest of the original clean
    string (rows in order): perfectly robust, so accuracy must be 1 at every rate — iff the analysis parses the
    clean prefix + completion, not the corrupted one."""

    def __init__(self, task, strings, corrupt_completion=False, keep_mode=False):
        self.cfg = SimpleNamespace(n_ctx=128, d_vocab=task.d_vocab, attention_dir="causal", task=task.spec())
        self.W_E = torch.zeros(1)
        self.rests = [x[PREFIX:] + N_SPECIAL for x in strings]
        self.clean = [[BOS] + (x[:PREFIX] + N_SPECIAL).tolist() for x in strings]
        self.corrupt_completion = corrupt_completion
        self.keep_mode = keep_mode    # corrupted prompt -> corrupted completion (the paper's "mode switch")
        self.saw_corrupted: list[list[bool]] = []

    def generate(self, batch, max_new_tokens=None, temperature=1.0, eos_token_id=None, generator=None):
        assert len(batch) == len(self.rests)
        seen = [batch[i].tolist() != self.clean[i] for i in range(len(batch))]
        self.saw_corrupted.append(seen)
        rests = [np.r_[r, EOS] for r in self.rests]
        if self.corrupt_completion:                       # drop the last terminal: never a valid completion
            rests = [np.r_[r[:-2], EOS] for r in rests]
        if self.keep_mode:
            rests = [np.r_[r[:-2], EOS] if bad else r for r, bad in zip(rests, seen)]
        width = max(map(len, rests))
        new = torch.from_numpy(np.stack([np.r_[r, [EOS] * (width - len(r))] for r in rests]).astype(np.int64))
        return torch.cat([batch, new], 1)


def test_one_row_per_rate_and_temperature():
    task = CFGTask("demo")
    rates, temps = (0.0, 0.1, 0.15, 0.2), (0.1, 0.2, 1.0)
    r = analyses.robustness(_model(task), rates=rates, temperatures=temps, n=2, prefix_len=PREFIX,
                            max_new_tokens=6, progress=False)
    assert [(x["rate"], x["temperature"]) for x in r.rows()] == [(a, t) for a in rates for t in temps]
    for x in r.rows():
        assert x["n"] == 2 and x["accuracy"] in (0.0, 0.5, 1.0) and x["train_corrupt_frac"] == 0.0
        base = r.accuracy(0.0, x["temperature"])   # mode switch = accuracy lost to the corruption at this τ
        assert x["mode_switch"] == pytest.approx(base - x["accuracy"])
    assert all(x["flipped"] == 0 for x in r.rows() if x["rate"] == 0)
    assert r.table().count("\n") == 1 + len(rates) * len(temps)


def test_rate_zero_is_plain_cut_prefix_accuracy():
    task = CFGTask("demo")
    model = _model(task)
    n, temp = 8, 1.0
    r = analyses.robustness(model, rates=(0.0,), temperatures=(temp,), n=n, prefix_len=PREFIX, seed=3,
                            batch_size=n, max_new_tokens=40, progress=False)
    # independently: cut-PREFIX prompts of the same strings, model.generate, task.accepts on the raw output
    prompts = torch.tensor([[BOS] + (x[:PREFIX] + N_SPECIAL).tolist() for x in long_strings(task, n, PREFIX, 3)])
    out = model.generate(prompts, max_new_tokens=40, temperature=temp, eos_token_id=EOS, seed=3 + 1)
    expect = task.accepts(out)
    assert r.per_sample["0.0@1.0"] == expect.tolist()
    assert r.accuracy(0.0, temp) == pytest.approx(expect.float().mean().item())


def test_clean_prefix_is_put_back_before_parsing():
    task = CFGTask("demo", corrupt_frac=0.1)
    strings = long_strings(task, 10, PREFIX, seed=0)
    r = analyses.robustness(Oracle(task, strings), task, rates=(0.0, 0.5), temperatures=(1.0,), n=10,
                            prefix_len=PREFIX, batch_size=10, progress=False)
    assert r.accuracy(0.0, 1.0) == 1.0 and r.accuracy(0.5, 1.0) == 1.0
    assert r.rows()[1]["mode_switch"] == 0.0 and r.train_corrupt_frac == 0.1 and r.rows()[1]["flipped"] > 0.2
    bad = analyses.robustness(Oracle(task, strings, corrupt_completion=True), task, rates=(0.0,),
                              temperatures=(1.0,), n=10, prefix_len=PREFIX, batch_size=10, progress=False)
    assert bad.accuracy(0.0, 1.0) < 0.5


def test_a_model_that_keeps_the_corrupted_mode_scores_the_clean_prompt_rate():
    """Planted ground truth: a stand-in that completes validly iff its prompt is the clean prefix and otherwise
    writes a corrupted completion. Its accuracy at rate γ is the fraction of prompts it *saw* uncorrupted (counted
    by the stand-in itself, not by the analysis), and the mode switch is the fraction it saw corrupted."""
    task = CFGTask("demo")
    strings = long_strings(task, 40, PREFIX, seed=0)
    oracle = Oracle(task, strings, keep_mode=True)
    rates = (0.0, 0.05, 0.3)
    r = analyses.robustness(oracle, task, rates=rates, temperatures=(1.0,), n=40, prefix_len=PREFIX,
                            batch_size=40, progress=False)
    assert len(oracle.saw_corrupted) == 3 and not any(oracle.saw_corrupted[0])
    for rate, seen in zip(rates, oracle.saw_corrupted):
        frac = sum(seen) / 40
        assert r.accuracy(rate, 1.0) == pytest.approx(1 - frac)
        row = next(x for x in r.rows() if x["rate"] == rate)
        assert row["mode_switch"] == pytest.approx(frac)
        assert row["flipped"] <= frac or rate == 0.0       # token flip rate <= fraction of prompts touched
    assert 0 < sum(oracle.saw_corrupted[1]) < sum(oracle.saw_corrupted[2])


@pytest.mark.parametrize("kwargs, match", [
    (dict(rates=(-0.1,)), "rates"),
    (dict(rates=(1.5,)), "rates"),
    (dict(rates=()), "rates"),
    (dict(temperatures=(-1.0,)), "temperatures"),
    (dict(n=0), "n = 0"),
    (dict(prefix_len=500), "prefix_len"),
    (dict(prefix_len=90), "prefix_len = 90"),     # fits the context, but no demo string is that long
])
def test_bad_options_are_refused(kwargs, match):
    task = CFGTask("demo")
    model = _model(task, n_ctx=128)
    with pytest.raises(ValueError, match=match):
        analyses.robustness(model, progress=False, **kwargs)


def test_vocabulary_mismatch_is_refused():
    task = CFGTask("demo")
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab - 1, n_ctx=96, seed=0))
    with pytest.raises(ValueError, match="vocabulary"):
        analyses.robustness(model, task, n=2, progress=False)
