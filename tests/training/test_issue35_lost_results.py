"""Issue 35, class "lost or half-written": one lock across check-and-create, the done-marker last, advice that works.

Each test is named after the fault class it guards and would fail if the fix were undone.
"""
from __future__ import annotations

import json
import os

import pytest
import train_helpers  # noqa: F401  (registers the count_test task)

from plm_app.cli import main
from plm_app.commands import train as train_cli
from plm_interp.training import lock

BASE = ["--set", "model.preset=tiny", "--set", "model.n_ctx=16", "--set", "train.max_steps=2",
        "--set", "train.batch_size=4", "--set", "train.progress=false", "--set", "train.ckpt_every=0"]


def _train(run_dir, *extra):
    return main(["train", "count_test", *BASE, *extra, "--run-dir", str(run_dir)])


# -- one lock held across check-and-create ---------------------------------------------------------------------

def test_lock_across_check_and_create_refuses_the_second_of_two_fresh_trains(tmp_path, monkeypatch, capsys):
    """Two fresh trains on one --run-dir: the other one finishes between this one's first look and its lock.

    The wrapper plays the other process: just before this command takes the lock, a complete run appears in
    the directory (the other train took the lock, wrote config.json, trained and released it). Checked only
    before the lock, the command would go on and silently replace that run; checked under it, it is refused."""
    run_dir = tmp_path / "run"
    other = tmp_path / "other"
    assert _train(other) == 0
    real_acquire = lock.acquire

    def other_train_wins_the_race(directory, *a, **k):
        if not (run_dir / "config.json").exists():
            run_dir.mkdir(exist_ok=True)
            for name in ("config.json", "metrics.jsonl"):
                (run_dir / name).write_bytes((other / name).read_bytes())
        return real_acquire(directory, *a, **k)

    monkeypatch.setattr(lock, "acquire", other_train_wins_the_race)
    before = (run_dir / "config.json").read_bytes() if (run_dir / "config.json").exists() else None
    assert before is None
    assert _train(run_dir, "--set", "train.lr=0.002") == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "Traceback" not in err
    assert json.loads((run_dir / "config.json").read_text())["train"]["lr"] != 0.002  # the winner's run is intact
    assert not (run_dir / "final").exists()


def test_lock_across_check_and_create_unwritable_run_dir_is_named(tmp_path, monkeypatch, capsys):
    """A run dir that cannot be created or locked (read-only file system) is a message naming it, not a
    PermissionError traceback (we may run as root, so the refusal is simulated at the lock)."""
    def read_only(directory, *a, **k):
        raise PermissionError(13, "Permission denied", str(directory))

    monkeypatch.setattr(lock, "acquire", read_only)
    assert _train(tmp_path / "ro") == 2
    err = capsys.readouterr().err
    assert "--run-dir" in err and "ro" in err and "writable" in err and "Traceback" not in err


def test_lock_across_check_and_create_checkpoints_that_is_a_file_is_refused_before_training(tmp_path, capsys,
                                                                                            monkeypatch):
    run_dir = tmp_path / "run"
    assert _train(run_dir) == 0
    (run_dir / "config.json").unlink()
    import shutil
    shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "checkpoints").write_text("not a directory")
    from plm_interp.training.trainer import Trainer
    monkeypatch.setattr(Trainer, "fit", lambda *a, **k: pytest.fail("trained before the check"))
    assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "checkpoints is a file" in err and "Traceback" not in err


# -- the NonFiniteLossError advice must work -------------------------------------------------------------------

def _nan_training(monkeypatch, from_step: int = 1):
    """Make every training loss NaN from optimiser step ``from_step`` on (one micro-batch per step)."""
    from plm_interp.training import trainer as trainer_mod

    real_init = trainer_mod.Trainer.__init__
    calls = {"n": 0}

    def nan_loss(model, batch):
        calls["n"] += 1
        loss = trainer_mod.lm_loss_fn(model, batch)
        return loss * float("nan") if calls["n"] >= from_step else loss

    def init(self, *a, **k):
        k["loss_fn"] = nan_loss
        real_init(self, *a, **k)
    monkeypatch.setattr(trainer_mod.Trainer, "__init__", init)


def test_nonfinite_loss_advice_works_when_no_checkpoint_was_saved(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _nan_training(m)
        assert _train(run_dir) == 2
    err = capsys.readouterr().err
    assert "NaN or Inf at step 1" in err and "Traceback" not in err
    assert "same command again" in err and "--set train.lr=" in err
    assert not (run_dir / "config.json").exists()  # config.json left behind would block the advised command
    advised = err.split("e.g. ")[1].split(" ")[0:1] + err.split("e.g. ")[1].split(" ")[1:2]
    assert advised[0] == "--set" and advised[1].startswith("train.lr=")
    assert _train(run_dir, *advised) == 0  # the advised command runs
    assert json.loads((run_dir / "config.json").read_text())["train"]["lr"] == float(advised[1].split("=")[1])


def test_nonfinite_loss_advice_works_after_a_checkpoint(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    args = ["--set", "train.max_steps=4", "--set", "train.ckpt_every=2", "--set", "train.log_every=1"]
    with monkeypatch.context() as m:
        _nan_training(m, from_step=3)
        assert _train(run_dir, *args) == 2
    err = capsys.readouterr().err
    assert "NaN or Inf at step 3" in err and "step_00000002" in err and "Traceback" not in err
    assert "another --run-dir" in err and "--resume" in err
    assert (run_dir / "config.json").is_file()  # the run with its good checkpoint is kept for inspection
    advised = err.split("e.g. ")[1].split(" ")[:2]
    assert _train(tmp_path / "lower", *args, *advised) == 0  # the advised command runs


# -- the analysis done-marker is written last ------------------------------------------------------------------

def test_done_marker_last_result_json_follows_every_artefact(tmp_path, monkeypatch):
    """``result.json`` marks an analysis done (the experiment runner skips it): written after table.md and
    plot.png, a failure or kill while writing those leaves no marker, so the next re-issue redoes it."""
    from analyses import result as result_mod
    from analyses.shared import records  # noqa: F401  (an AnalysisResult subclass is enough)

    order = []
    for name in ("atomic_write_json", "atomic_write_bytes", "atomic_write_png"):
        real = getattr(result_mod, name)
        monkeypatch.setattr(result_mod, name,
                            lambda path, *a, _real=real, **k: (order.append(os.path.basename(path)), _real(path, *a, **k))[1])
    res = _tiny_result()
    res.save(tmp_path / "a")
    assert order[-1] == "result.json" and set(order) == {"result.json", "table.md", "plot.png"}

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(result_mod, "atomic_write_png", disk_full)
    with pytest.raises(OSError):
        res.save(tmp_path / "b")
    assert not (tmp_path / "b" / "result.json").exists()  # no done-marker without its plot


def _tiny_result():
    import dataclasses

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analyses.result import AnalysisResult

    @dataclasses.dataclass
    class Tiny(AnalysisResult):
        value: float = 0.5

        def rows(self):
            return [{"value": self.value}]

        def plot(self):
            fig, ax = plt.subplots()
            ax.plot([0, 1], [0, self.value])
            return fig
    return Tiny()
