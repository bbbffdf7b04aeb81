"""Slow tier (CPU scale, minutes): the shipped ``igsm-small`` model (trained on CPU by
``scripts/train_igsm_small.sh``; the commands and budget are on its card) re-measured by the Part 2 analyses.

Run: ``bash scripts/test.sh tests/analyses_part2 -m slow``. The figures are recorded in docs/part2_analyses.md
and on the model card; each test re-measures one and checks it against the card and against its control.
"""
from __future__ import annotations

import pytest

import analyses
from plm_interp.pretrained import card, load_pretrained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model():
    return load_pretrained("igsm-small")


@pytest.fixture(scope="module")
def recorded():
    return {f["metric"]: f["value"] for f in card("igsm-small")["figures"]}


def test_small_model_solves_in_distribution(model, recorded):
    """Item 7 of issue 7: high in-distribution accuracy on the small-op preset it was trained on."""
    r = analyses.reasoning_level(model, n=128, sets=("in",), progress=False)
    assert abs(100 * r.accuracy("in") - recorded["accuracy, in-distribution (op <= op_max) %"]) <= 5
    assert r.accuracy("in") >= 0.8 and r.accuracy("in", 1) >= 0.9
    # level-1 reasoning: no unnecessary parameter on a correct solution (the paper: 0.00)
    assert next(x for x in r.records if x["op"] == "all")["unnecessary_params"] == 0


from card_remeasure import card_commands, check_command  # noqa: E402


@pytest.mark.parametrize("command", card_commands("igsm-small"))
def test_every_card_figure_of_the_probes_and_retry_is_re_measured(model, command):
    """Every V-probe / regret-probe / retry figure on the card again, with its own command (seeded), and every
    margin its verdict claims (over the random-init control, the majority guess or greedy) again."""
    check_command("igsm-small", command, model)
