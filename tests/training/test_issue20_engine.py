"""Issue 20, the training engine's part: one writer per run directory (1), a NaN/Inf loss stops training (4),
an unavailable device is refused before anything is written (5), a full disk says so and resumes cleanly (8),
files keep the umask's mode, unverifiable weights are reported, packages ship py.typed (10)."""
from __future__ import annotations

import errno
import fnmatch
import json
import os
import signal
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
import torch
from train_helpers import small_config, source, state_equal, tiny_model

import plm_interp.io as pio
from plm_interp.checkpoint import CheckpointError, UnverifiedWeightsWarning, load_model, save_model
from plm_interp.config import ConfigError
from plm_interp.training import TrainConfig, Trainer, read_metrics
from plm_interp.training import checkpointing as ckpt
from plm_interp.training.lock import LOCK_NAME, RunDirLocked, acquire, release
from plm_interp.training.trainer import NonFiniteLossError

ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = ROOT / "plm_interp" / "training" / "lock.py"

# A holder process that loads lock.py on its own (no torch import: starts in well under a second).
HOLDER = f"""
import importlib.util, sys, os, signal, time
spec = importlib.util.spec_from_file_location("lock", {str(LOCK_FILE)!r})
lock = sys.modules["lock"] = importlib.util.module_from_spec(spec); spec.loader.exec_module(lock)
held = lock.acquire(sys.argv[1])
print("held", flush=True)
if sys.argv[2] == "raise":
    raise SystemExit("boom")
if sys.argv[2] == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(3600)  # killed by the test; long so a busy machine cannot outlast it
"""


def _holder(run_dir: Path, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


# -- 1. one writer per run directory ---------------------------------------------------------------------------

def test_issue20_1_second_writer_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "race"
    proc = _holder(run_dir, "hold")
    try:
        with pytest.raises(RunDirLocked) as err:
            Trainer(tiny_model(), source(), small_config(max_steps=2), run_dir).fit()
        assert f"pid {proc.pid} on host {os.uname().nodename}" in str(err.value)
        assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME]  # the holder's: no metrics, no checkpoint
    finally:
        proc.kill()
        proc.wait()


def test_issue20_1_lock_released_on_any_exit_and_stale_lock_reported(tmp_path, capsys):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert _holder(clean, "raise").wait() == 1  # an exception: the kernel drops the flock with the process
    proc = _holder(killed, "sigkill")
    assert proc.wait() == -signal.SIGKILL
    holder_pid = proc.pid
    result = Trainer(tiny_model(), source(), small_config(max_steps=2), killed).fit()
    assert result.step == 2
    err = capsys.readouterr().err
    assert f"stale lock taken over: pid {holder_pid}" in err
    lock = acquire(clean)  # the raising holder's lock is free too
    release(lock)
    assert not (killed / LOCK_NAME).exists()  # a clean release leaves no lock file behind


def test_issue20_1_lock_is_released_when_training_fails_and_reentrant_in_process(tmp_path):
    run_dir = tmp_path / "run"
    outer = acquire(run_dir)  # what the CLI does before writing config.json
    try:
        bad = Trainer(tiny_model(), source(), small_config(max_steps=4, ckpt_every=2), run_dir,
                      loss_fn=_nan_from(3))
        with pytest.raises(NonFiniteLossError):
            bad.fit()
        assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == os.getpid()  # still held by the outer
    finally:
        release(outer)
    proc = _holder(run_dir, "hold")  # now another process can take it
    proc.kill()
    proc.wait()


# -- 4. a NaN/Inf loss stops training -------------------------------------------------------------------------

def _nan_from(step: int):
    """A loss that turns NaN from optimiser step ``step`` on (1-based; one micro-batch per step)."""
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        loss = model(batch["tokens"], return_type="loss", loss_mask=batch.get("loss_mask"))
        return loss * float("nan") if calls["n"] >= step else loss
    return loss_fn


def test_issue20_4_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = small_config(max_steps=12, ckpt_every=4, log_every=5, keep_checkpoints=5)
    trainer = Trainer(tiny_model(), source(), cfg, tmp_path, loss_fn=_nan_from(6))
    with pytest.raises(NonFiniteLossError, match=r"NaN or Inf at step 6 \(noticed at step 8\)") as err:
        trainer.fit()
    assert "step_00000004" in str(err.value)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "checkpoints")] == [4]  # nothing saved after step 6
    state, _ = ckpt.load_latest(tmp_path / "checkpoints")
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert [r["step"] for r in read_metrics(tmp_path)] == [5]  # the NaN step was never logged as a loss


def test_issue20_4_inf_loss_before_any_checkpoint_says_none_was_saved(tmp_path):
    def inf_loss(model, batch):
        return model(batch["tokens"], return_type="loss") * float("inf")
    with pytest.raises(NonFiniteLossError, match="at step 1 .*no checkpoint was saved"):
        Trainer(tiny_model(), source(), small_config(max_steps=3, log_every=1), tmp_path, loss_fn=inf_loss).fit()
    assert ckpt.list_checkpoints(tmp_path / "checkpoints") == []


# -- 5. device availability is checked before anything is written -----------------------------------------

def test_issue20_5_cuda_device_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    cfg = small_config(device="cuda")  # constructing (e.g. reading a saved config) is allowed
    with pytest.raises(ConfigError, match=r"train.device = 'cuda' but CUDA is not available"):
        cfg.validate()
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match="train.device"):
        Trainer(tiny_model(), source(), cfg, run_dir)
    assert not run_dir.exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"train.device = 'cuda:1' but this machine has 1 CUDA device"):
        small_config(device="cuda:1").validate()
    with pytest.raises(ConfigError, match=r"train.device = 'gpu' is not a device"):
        small_config(device="gpu")
    assert small_config(device="cpu").validate().device == "cpu"


# -- 8. a full disk --------------------------------------------------------------------------------------------

def _disk_that_fills(monkeypatch) -> dict:
    """Patch the one low-level write of plm_interp.io: while ``full["on"]`` it fails as a full disk does."""
    full = {"on": False}
    real_write = pio._write

    def write(fd, data):
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)
    monkeypatch.setattr(pio, "_write", write)
    return full


def test_issue20_8_enospc_during_checkpoint_names_errno_and_path_and_resume_logs_each_step_once(tmp_path,
                                                                                                  monkeypatch):
    torch.set_num_threads(1)
    cfg = small_config(max_steps=10, ckpt_every=4, log_every=1)
    full = _disk_that_fills(monkeypatch)
    fill_at_4 = lambda model, step: full.update(on=step == 4)  # noqa: E731 - runs just before the step-4 save
    run = tmp_path / "run"
    with pytest.raises(OSError) as err:
        Trainer(tiny_model(), source(), small_config(max_steps=10, ckpt_every=4, log_every=1, eval_every=1),
                run, callbacks=[fill_at_4]).fit()
    assert err.value.errno == errno.ENOSPC
    assert "ENOSPC (No space left on device) while writing" in str(err.value)
    assert str(run / "checkpoints" / "step_00000004" / "state.pt") in str(err.value)
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4]  # logged before the save failed
    full["on"] = False
    resumed = Trainer(tiny_model(), source(), cfg, run).fit()  # no checkpoint survived: starts from step 0
    assert resumed.resumed_from is None
    assert [r["step"] for r in read_metrics(run) if "loss" in r] == list(range(1, 11))
    straight = Trainer(tiny_model(), source(), cfg, tmp_path / "straight")
    straight.fit()
    state, _ = ckpt.load_latest(run / "checkpoints")
    assert state_equal(state["model"], straight.model.state_dict())


def test_issue20_8_enospc_mid_run_resumes_from_the_previous_checkpoint_with_one_line_per_step(tmp_path,
                                                                                                monkeypatch):
    full = _disk_that_fills(monkeypatch)
    run = tmp_path / "run"
    with pytest.raises(OSError, match="ENOSPC"):
        Trainer(tiny_model(), source(), small_config(max_steps=12, ckpt_every=4, eval_every=1), run,
                callbacks=[lambda model, step: full.update(on=step == 8)]).fit()
    full["on"] = False
    valid = [step for step, directory in ckpt.list_checkpoints(run / "checkpoints") if ckpt.verify(directory) is None]
    assert valid == [4]
    result = Trainer(tiny_model(), source(), small_config(max_steps=12, ckpt_every=4), run).fit()
    assert result.resumed_from == 4
    assert [r["step"] for r in read_metrics(run) if "loss" in r] == list(range(1, 13))


# -- 10. file modes, unverifiable weights, py.typed --------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_issue20_10_atomic_writes_keep_the_umask_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        pio.atomic_write_json(tmp_path / "a.json", {"x": 1})
        with open(tmp_path / "plain", "w"):  # what open() gives under the same umask: the reference
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == mode == (tmp_path / "plain").stat().st_mode & 0o777
    (tmp_path / "a.json").chmod(0o640)  # replacing a file keeps the mode it had
    pio.atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640


def test_issue20_10_load_model_says_when_it_cannot_verify_the_weights(tmp_path):
    save_model(tiny_model(), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checksummed checkpoint loads without any warning
        load_model(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    del meta["weights_sha256"]
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.warns(UnverifiedWeightsWarning, match="no weights_sha256: the weights .* cannot be verified"):
        load_model(tmp_path)
    meta["weights_sha256"] = "0" * 64
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_model(tmp_path)


def test_issue20_10_every_package_ships_py_typed():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert any(fnmatch.fnmatch("py.typed", p) for p in patterns)
    for package in ("plm_interp", "tasks", "analyses", "plm_app"):
        assert (ROOT / package / "py.typed").is_file(), package


def test_issue20_8_enospc_in_metrics_and_model_files_names_the_file(tmp_path, monkeypatch):
    from plm_interp.training import metrics as metrics_module

    class FullFile:
        def __init__(self, *args, **kwargs):
            pass

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self):
            pass
    monkeypatch.setattr(metrics_module, "open", FullFile, raising=False)
    log = metrics_module.MetricsLog(tmp_path)
    with pytest.raises(OSError, match=r"ENOSPC \(No space left on device\) while writing .*metrics.jsonl"):
        log.log({"step": 1, "loss": 1.0})
    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(pio, "_write", disk_full)
    with pytest.raises(OSError, match=r"ENOSPC .* while writing .*final/model.safetensors"):
        save_model(tiny_model(), tmp_path / "final")
    assert not (tmp_path / "final" / "model.safetensors").exists()
    assert [p.name for p in (tmp_path / "final").iterdir()] == []  # no temp file left behind
