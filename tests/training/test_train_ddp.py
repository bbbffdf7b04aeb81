"""The same script under torchrun with 2 CPU processes (gloo) follows the 1-process loss curve.

Stated tolerance: |loss_2proc - loss_1proc| <= 1e-5 at every step (8 steps). The global batch is the same;
only the floating-point order of the gradient reduction differs (all-reduce across ranks vs one batch).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from train_helpers import SequenceSource, small_config, tiny_model

from plm_interp.training import Trainer, read_metrics

HELPER = Path(__file__).with_name("train_helpers.py")
TOLERANCE = 1e-5


def test_two_gloo_processes_match_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HELPER), str(tmp_path / "ddp"), "--steps", "8", "--batch", "8", "--source", "seq"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]

    torch.set_num_threads(1)
    single = Trainer(tiny_model(), SequenceSource(), small_config(max_steps=8, batch_size=8), tmp_path / "one")
    single.fit()
    ddp = [r["loss"] for r in read_metrics(tmp_path / "ddp")]
    one = [r["loss"] for r in read_metrics(tmp_path / "one")]
    assert len(ddp) == len(one) == 8
    assert max(abs(a - b) for a, b in zip(ddp, one)) <= TOLERANCE, list(zip(ddp, one))
    assert one[-1] < one[0]  # and the curve is a real training curve
