"""letter_reuse: sites and used letters by hand; the probability accounting is exact on a uniform model."""
from __future__ import annotations

import pytest
import torch

import analyses
from analyses.letter_reuse import letter_sites
from plm_interp import HookedPLM
from plm_interp.config import preset_config
from tasks.igsm import IGSMTask

torch.set_num_threads(1)


def test_sites_by_hand():
    words = ("<BOS> ... <SOL> Define A 's B as x ; so x = 5 . Define C 's D as y ; R = x + 3 = 8 ; so y = R + x "
             "= 13 . Define E as z ; so z = y = 13 . <ANS> 13 <EOS>").split()
    sites = letter_sites(words)
    assert [(words[t], words[t + 1], used) for t, used in sites] == [("as", "y", ["x"]), ("as", "z", ["x", "y", "R"])]


def _uniform_model(task):
    """W_U = b_U = 0: every next-token distribution is uniform over the vocabulary."""
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=192, positional="rot", task=task.spec()))
    with torch.no_grad():
        model.unembed.W_U.zero_()
        model.unembed.b_U.zero_()
    return model.eval()


@pytest.mark.parametrize("letters", [52, 8])
def test_uniform_model_puts_used_over_vocab_on_used_letters(letters):
    """Independent count from the generator's steps: a step's letter sees every letter defined before it."""
    task = IGSMTask("tiny", letters=letters)
    r = analyses.letter_reuse(_uniform_model(task), n=16, progress=False)
    used_counts = []
    for s in task.sample(16, seed=0, split="test").samples:
        defined = 0
        for i, step in enumerate(s.problem.steps):
            if i:
                used_counts.append(defined)
            defined += 1 + len(step.temps)
    rec = r.record()
    assert rec["n"] == len(used_counts)
    expect = sum(used_counts) / len(used_counts) / task.d_vocab
    assert rec["used_mass"] == pytest.approx(expect, rel=1e-5)
    assert rec["blind_mass"] == pytest.approx(expect, rel=1e-5)  # uniform = blind to which letters are used
    assert rec["argmax_used"] == 0  # ties go to id 0 (<PAD>)
    assert sum(x["n"] for x in r.records if x["used"] != "all") == rec["n"]


def test_bad_input():
    task = IGSMTask("tiny")
    with pytest.raises(ValueError, match="'n'"):
        analyses.letter_reuse(_uniform_model(task), n=0)
