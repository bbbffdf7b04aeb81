"""Slow tier (CPU scale, minutes): a small model trained on IGSMTask("small") and analysed.

Run: ``bash scripts/test.sh tests/analyses_part2 -m slow``. The figures recorded in
docs/part2_analyses.md come from the same recipe with more steps (see there).
"""
from __future__ import annotations

import pytest
import torch

import analyses
from plm_interp import HookedPLM
from plm_interp.config import preset_config
from plm_interp.training import TaskSource, TrainConfig, train
from tasks.igsm import IGSMTask

STEPS = 2000  # ~20-25 min on one core of the shared 2-core box


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    task = IGSMTask("small")
    cfg = preset_config("small", d_vocab=task.d_vocab, n_ctx=256, positional="rot", task=task.spec())
    model = HookedPLM(cfg)
    tc = TrainConfig(batch_size=16, max_steps=STEPS, lr=2e-3, weight_decay=0.05, warmup_steps=100,
                     schedule="cosine", ckpt_every=0, progress=False)
    train(model, TaskSource(task, 256), tc, run_dir=tmp_path_factory.mktemp("igsm_small"))
    return model.eval()


@pytest.mark.slow
def test_small_model_solves_in_distribution(trained):
    r = analyses.reasoning_level(trained, n=64, sets=("in",), progress=False)
    assert r.accuracy("in") >= 0.5


@pytest.mark.slow
@pytest.mark.parametrize("probe", ["can_next", "nece"])
def test_probes_beat_random_init(trained, probe):
    r = analyses.v_probe(trained, probe=probe, n_train=256, n_test=64, steps=200, progress=False)
    assert r.accuracy() > r.accuracy(model="random-init") + 0.05
    assert r.accuracy() > r.record()["majority"] + 0.05
