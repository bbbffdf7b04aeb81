"""Slow tier (``bash scripts/test.sh tests/analyses_part1 -m slow``, ~10 min on 2 cores): the quickstart's rot
model on the demo grammar shows Part 1's qualitative results at CPU scale. Figures: docs/part1_cpu_evidence.md."""
import json

import pytest

from plm_interp.cli import main

pytestmark = pytest.mark.slow


def test_rot_model_generates_the_language_and_encodes_the_tree(tmp_path):
    run = tmp_path / "qs"
    assert main(["quickstart", "--run-dir", str(run), "--no-progress"]) == 0
    h = json.loads((run / "headline.json").read_text())
    assert h["generation accuracy cut0 %"] >= 80
    trained, random_init = h["nt_probe NT4 at NT-ends (diag) %, trained / random-init"]
    assert trained >= random_init + 15
    assert h["NT-end probe b (NT4) %"] >= 90
