"""value_lookup: the sites are the solution's direct statements, and the attention accounting is exact."""
from __future__ import annotations

import pytest
import torch

import analyses
from analyses.value_lookup import lookup_sites
from plm_interp import HookedPLM
from plm_interp.config import preset_config
from tasks.igsm import IGSMTask

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def task():
    return IGSMTask("tiny")


def _uniform_model(task):
    """W_Q = b_Q = 0: every score is 0, so each query attends 1 / (q + 1) to every position up to itself."""
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=192, positional="rot", task=task.spec()))
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_Q.zero_()
            block.attn.b_Q.zero_()
    return model.eval()


def test_sites_by_hand():
    text = ("<BOS> The number of each A B 's C equals 5 . The number of each C 's D equals 7 more than each A B 's C . "
            "How many D does C have ? <SOL> Define A B 's C as x ; so x = 5 . Define C 's D as y ; so y = 7 + x = 12 . "
            "<ANS> 12 <EOS>")
    words = text.split()
    (eq, true, numbers), = lookup_sites(words)  # the second step is an operation, not a lookup
    assert words[eq - 1: eq + 2] == ["x", "=", "5"] and words[eq - 4] == "x"
    assert true == 10 and words[true] == "5"
    assert numbers == [10, 20] and words[20] == "7"


def test_every_op1_solution_is_one_lookup_of_the_answer(task):
    batch = task.sample(24, seed=3, op=1)
    tok = task.tokenizer
    for s in batch.samples:
        words = [tok.decode([i]) for i in s.ids]
        (eq, true, numbers), = lookup_sites(words)
        assert int(words[true]) == s.answer and true in numbers and words[eq] == "="


def test_attention_accounting_on_uniform_attention(task):
    model = _uniform_model(task)
    r = analyses.value_lookup(model, n=12, progress=False)
    expect_true = expect_other = chance = 0.0
    batch = task.sample(12, seed=0, op=1)
    n = 0
    for s in batch.samples:
        sites = lookup_sites([task.tokenizer.decode([i]) for i in s.ids])
        if not sites:  # "X's <Category>" of an item without children: "so t = 0", nothing stated to look up
            continue
        (eq, true, numbers), = sites
        n += 1
        expect_true += 1 / (eq + 1)
        expect_other += (len(numbers) - 1) / (eq + 1)
        chance += 1 / len(numbers)
    assert r.n_sites == n >= 8
    torch.testing.assert_close(r.to_true, torch.full_like(r.to_true, expect_true / n))
    torch.testing.assert_close(r.to_other, torch.full_like(r.to_other, expect_other / n))
    # uniform attention is exactly as selective as chance
    assert r.chance == pytest.approx(chance / n)
    torch.testing.assert_close(r.selectivity(), torch.full_like(r.to_true, 1 / (1 + expect_other / expect_true)))
    assert 0 <= r.value_acc + r.distractor_rate <= 1 and "value_lookup" in analyses.names()


def test_bad_input(task):
    model = _uniform_model(task)
    with pytest.raises(ValueError, match="'op'"):
        analyses.value_lookup(model, op=0)
    with pytest.raises(ValueError, match="'n'"):
        analyses.value_lookup(model, n=-1)
    cfg_model = HookedPLM(preset_config("tiny", d_vocab=8, n_ctx=16, task={"kind": "cfg", "grammar": "demo"}))
    with pytest.raises(ValueError):
        analyses.value_lookup(cfg_model)


def test_shipped_igsm_small_looks_the_number_up():
    """The card's figures for the shipped model (deterministic: teacher-forced, seed 0), and where the lookup is: a
    head past layer 0 (which cannot yet know which sentence names the parameter) that prefers the true number."""
    from plm_interp.pretrained import card, load_pretrained

    r = analyses.value_lookup(load_pretrained("igsm-small"), n=128, progress=False)
    recorded = {f["metric"]: f["value"] for f in card("igsm-small")["figures"]}
    assert round(100 * r.value_acc, 1) == recorded["value right at '=' (teacher-forced, op=1) %"]
    assert float(r.selectivity().max()) == pytest.approx(recorded["best head's lookup selectivity"], abs=2e-3)
    sel = r.selectivity()
    assert sel[1:].max() > r.chance + 0.3 and r.value_acc > 0.9
