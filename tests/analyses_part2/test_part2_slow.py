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
    assert r.accuracy("in", op=1) >= 0.5


@pytest.mark.parametrize("probe", ["can_next", "nece"])
def test_probes_beat_random_init(model, probe):
    r = analyses.v_probe(model, probe=probe, n_train=256, n_test=64, steps=200, progress=False)
    assert r.accuracy() > r.accuracy(model="random-init") + 0.05
    assert r.accuracy() > r.record()["majority"] + 0.05
