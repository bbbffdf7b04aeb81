"""SIGTERM / SIGINT stop a run after the current step with a checkpoint of that step; resuming from it is exact."""
from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from train_helpers import small_config, source, state_equal, tiny_model

from plm_app.cli import main
from plm_interp.checkpoint import load_model
from plm_interp.training import Trainer, TrainingStopped, read_metrics
from plm_interp.training import metrics as metrics_module
from plm_interp.training.stop_signal import stop_on_signals

STEPS = 12


def _signal_self_at(step: int, signum: int):
    """An eval callback that sends ``signum`` to this process after ``step`` (as a scheduler would, mid-run)."""
    def callback(model, s):
        if s == step:
            os.kill(os.getpid(), signum)
        return {}
    return callback


def test_sigterm_saves_the_current_step_and_the_resumed_run_is_bit_identical(tmp_path):
    torch.set_num_threads(1)
    straight = Trainer(tiny_model(), source(), small_config(max_steps=STEPS))
    straight.fit()
    before = signal.getsignal(signal.SIGTERM)
    stopped = Trainer(tiny_model(), source(), small_config(max_steps=STEPS, ckpt_every=100, eval_every=1),
                      tmp_path, callbacks=[_signal_self_at(5, signal.SIGTERM)])
    with pytest.raises(TrainingStopped) as info:
        stopped.fit()
    assert (info.value.step, info.value.signum, info.value.exit_code) == (5, signal.SIGTERM, 143)
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back once fit() ends
    # no scheduled checkpoint was due (every 100 steps): step 5 is there only because of the signal
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000005"]
    assert info.value.checkpoint == tmp_path / "checkpoints" / "step_00000005"

    resumed = Trainer(tiny_model(seed=99), source(), small_config(max_steps=STEPS, ckpt_every=100), tmp_path)
    result = resumed.fit(resume=True)
    assert (result.resumed_from, result.step) == (5, STEPS)
    assert state_equal(resumed.model.state_dict(), straight.model.state_dict())
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, STEPS + 1))


def test_without_a_run_dir_the_signal_keeps_its_usual_action():
    trainer = Trainer(tiny_model(), source(), small_config(max_steps=4, eval_every=1),
                      callbacks=[_signal_self_at(2, signal.SIGINT)])
    with pytest.raises(KeyboardInterrupt):  # nothing to save: no handler is installed, Ctrl-C interrupts
        trainer.fit()


def test_a_second_signal_of_the_same_kind_acts_at_once():
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals() as request:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert request.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) == before


def test_plm_interp_train_exits_143_on_sigterm_and_resume_finishes_the_run(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "count_test", "--set", "model.preset=tiny", "--set", "model.n_ctx=16",
            "--set", "train.max_steps=8", "--set", "train.batch_size=4", "--set", "train.progress=false",
            "--set", "train.ckpt_every=100", "--set", "train.log_every=1", "--run-dir", str(run_dir)]
    log = metrics_module.MetricsLog.log

    def log_then_term(self, record):  # the scheduler's SIGTERM arrives just after step 3 is logged
        log(self, record)
        if record.get("step") == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(metrics_module.MetricsLog, "log", log_then_term)
    assert main(args) == 143
    err = capsys.readouterr().err
    assert "stopped by SIGTERM after step 3" in err and "--resume" in err
    assert not (run_dir / "final").exists()
    monkeypatch.setattr(metrics_module.MetricsLog, "log", log)
    assert main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resumed from" in err and "step_00000003" in err
    assert [r["step"] for r in read_metrics(run_dir)] == list(range(1, 9))
    assert load_model(run_dir / "final").cfg.task["kind"] == "count_test"
