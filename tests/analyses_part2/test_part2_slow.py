"""Slow tier (CPU scale, minutes): the shipped ``igsm-small`` model (trained on IGSMTask("tiny") on CPU; the
command and budget are on its card) re-measured by the Part 2 analyses.

Run: ``bash scripts/test.sh tests/analyses_part2 -m slow``. The figures are recorded in docs/part2_analyses.md
and on the model card; training it again takes about an hour on one core (the card's command).
"""
from __future__ import annotations

import pytest

import analyses
from plm_interp.pretrained import card, load_pretrained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model():
    return load_pretrained("igsm-small")


def test_small_model_solves_in_distribution(model):
    r = analyses.reasoning_level(model, n=128, sets=("in",), progress=False)
    recorded = {f["metric"]: f["value"] for f in card("igsm-small")["figures"]}
    assert abs(100 * r.accuracy("in") - recorded["accuracy, in-distribution (op <= op_max) %"]) <= 10
    # measured 20.3 % (op=1: 30 %); a random-init model solves none. Far from the paper's 99.9 (issue 7 open).
    assert r.accuracy("in") >= 0.1


def test_nece_probe_beats_random_init_and_majority(model):
    r = analyses.v_probe(model, probe="nece", n_train=256, n_test=64, steps=200, progress=False)
    assert r.accuracy() > r.accuracy(model="random-init") + 0.05  # measured 74.6 vs 59.4
    assert r.accuracy() > r.record()["majority"] + 0.05  # majority 52.0


def test_can_next_probe_beats_majority(model):
    # measured 57.0 vs majority 47.3; the random-init control reaches 53.1, so at this scale can_next is
    # only marginally above it (recorded in docs/part2_analyses.md)
    r = analyses.v_probe(model, probe="can_next", n_train=256, n_test=64, steps=200, progress=False)
    assert r.accuracy() > r.record()["majority"] + 0.05
