"""``plm-interp train``: validation before anything is written, saved config, final model with its task, resume."""
from __future__ import annotations

import json
import shutil

import pytest
import train_helpers  # noqa: F401  (registers the count_test task)

from plm_interp.checkpoint import load_model
from plm_app.cli import main

BASE = ["--set", "model.preset=tiny", "--set", "model.n_ctx=16", "--set", "train.max_steps=4",
        "--set", "train.batch_size=4", "--set", "train.progress=false", "--set", "train.ckpt_every=2"]


def test_train_writes_the_documented_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir)]) == 0
    assert {p.name for p in run_dir.iterdir()} == {"config.json", "metrics.jsonl", "checkpoints", "final"}
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["task"] == {"kind": "count_test", "vocab": 16} and saved["train"]["max_steps"] == 4
    model = load_model(run_dir / "final")
    assert model.cfg.task == {"kind": "count_test", "vocab": 16}


@pytest.mark.parametrize("override, key", [
    ("train.lr=fast", "train.lr"),
    ("train.lr=-1", "train.lr"),
    ("train.learning_rate=1", "train.learning_rate"),
    ("model.n_heads=3", "n_heads"),
    ("model.d_model=big", "model.d_model"),
    ("task.vocabulary=4", "task.vocabulary"),
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, capsys, override, key):
    run_dir = tmp_path / "run"
    assert main(["train", "count_test", *BASE, "--set", override, "--run-dir", str(run_dir)]) == 2
    assert key in capsys.readouterr().err
    assert not run_dir.exists()


def test_config_file_and_override_precedence(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('[model]\npreset = "tiny"\nn_ctx = 16\n[train]\nmax_steps = 3\nbatch_size = 4\n'
                      "progress = false\nlr = 0.01\n")
    run_dir = tmp_path / "run"
    assert main(["train", "count_test", "--config", str(config), "--set", "train.lr=0.002",
                 "--run-dir", str(run_dir)]) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["lr"] == 0.002 and saved["train"]["max_steps"] == 3
    # the saved config reproduces the run
    assert main(["train", "count_test", "--config", str(run_dir / "config.json"),
                 "--run-dir", str(tmp_path / "again")]) == 0


def test_resume_rules(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "count_test", *BASE, "--run-dir", str(run_dir)]
    assert main(args) == 0
    assert main(args) == 2 and "--resume" in capsys.readouterr().err  # never overwrite a run
    assert main([*args, "--resume", "--set", "train.lr=0.1"]) == 2
    assert "train.lr" in capsys.readouterr().err  # a resumed run must train the same way
    assert main(["train", "count_test", "--run-dir", str(run_dir), "--resume",
                 "--set", "train.log_every=1"]) == 0  # saved config, runtime key changed


def test_task_preset_layer(tmp_path):
    from plm_app import runconfig

    class Fake:
        kind = "fake"

        def presets(self):
            return {"small": {"model": {"n_layers": 1}, "train": {"max_steps": 7}}}
    layer = runconfig.preset_layer(Fake(), "small")
    assert layer["train"] == {"max_steps": 7} and layer["model"] == {"n_layers": 1}
    with pytest.raises(ValueError, match="small"):
        runconfig.preset_layer(Fake(), "huge")


def test_real_cfg_task_if_present(tmp_path):
    pytest.importorskip("tasks.cfg")
    run_dir = tmp_path / "cfg"
    assert main(["train", "cfg", "--set", "task.grammar=demo", *BASE, "--set", "model.n_ctx=32",
                 "--run-dir", str(run_dir)]) == 0
    assert load_model(run_dir / "final").cfg.task["grammar"] == "demo"


def test_train_cli_trains_the_encoder_on_masked_lm(tmp_path, monkeypatch):
    """`--set model.attention_dir=bidirectional` trains on the task's masked-LM stream (no next-token leakage)."""
    from plm_interp.training import trainer as trainer_mod

    seen = []
    real = trainer_mod.Trainer

    def spy(model, source, *a, **k):
        seen.append(source)
        return real(model, source, *a, **k)

    monkeypatch.setattr(trainer_mod, "Trainer", spy)
    run_dir = tmp_path / "enc"
    assert main(["train", "cfg", "--set", "task.grammar=demo", "--set", "model.preset=tiny", "--set", "model.n_ctx=64",
                 "--set", "model.attention_dir=bidirectional", "--set", "model.positional=rel",
                 "--set", "train.max_steps=2", "--set", "train.batch_size=4", "--set", "train.progress=false",
                 "--run-dir", str(run_dir)]) == 0
    assert seen and seen[0].masked
    batch = next(seen[0](4, seed=0))
    assert (batch["targets"] == -100).any() and (batch["targets"] != -100).any()


def test_init_from_starts_at_the_source_weights_and_takes_its_architecture(tmp_path):
    import torch

    src = tmp_path / "src"
    assert main(["train", "count_test", *BASE, "--run-dir", str(src)]) == 0
    source = load_model(src / "final")
    # no [model] section: the architecture is the source's; lr 1e-9 leaves the weights where they started
    tune = tmp_path / "tune"
    assert main(["train", "count_test", "--set", "train.init_from=" + str(src / "final"), "--set", "train.lr=1e-9",
                 "--set", "train.max_steps=1", "--set", "train.batch_size=4", "--set", "train.progress=false",
                 "--set", "train.seed=7", "--run-dir", str(tune)]) == 0
    tuned = load_model(tune / "final")
    assert tuned.cfg.d_model == source.cfg.d_model and tuned.cfg.seed == 7
    for name, weight in source.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[name], weight, atol=1e-6, rtol=0)
    # the control: the same run without init_from starts elsewhere
    fresh = tmp_path / "fresh"
    assert main(["train", "count_test", *BASE, "--set", "train.lr=1e-9", "--set", "train.max_steps=1",
                 "--set", "train.seed=7", "--run-dir", str(fresh)]) == 0
    assert not torch.allclose(load_model(fresh / "final").W_E, source.W_E, atol=1e-3)


@pytest.mark.parametrize("value, words", [
    ("no/such/dir", ["train.init_from", "no/such/dir", "shipped"]),
    ("SRC", ["train.init_from", "model.d_model", "source 32"]),
])
def test_init_from_is_checked_before_anything_is_written(tmp_path, capsys, value, words):
    src = tmp_path / "src"
    assert main(["train", "count_test", *BASE, "--run-dir", str(src)]) == 0
    capsys.readouterr()
    run_dir = tmp_path / "run"
    value = str(src / "final") if value == "SRC" else value
    assert main(["train", "count_test", *BASE, "--set", "model.d_model=64", "--set", f"train.init_from={value}",
                 "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not run_dir.exists()


def test_issue20_1_second_train_on_a_locked_run_dir_writes_nothing(tmp_path, capsys):
    """Two ``plm-interp train`` on one --run-dir: the second is refused before it writes config.json."""
    import subprocess
    import sys

    run_dir = tmp_path / "race"
    # the holder sleeps far longer than the test can take on a busy machine; it is killed below
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom plm_interp.training.lock import acquire\n"
                               f"acquire({str(run_dir)!r}); print('held', flush=True); time.sleep(3600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir)]) == 2  # refused, not waiting
        err = capsys.readouterr().err
        assert "in use by another writer" in err and str(holder.pid) in err
        assert {p.name for p in run_dir.iterdir()} == {".lock"}       # no config.json, no metrics, no checkpoints
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: the same command now runs (a stale lock is taken over)
    assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir)]) == 0
    assert json.loads((run_dir / "config.json").read_text())["train"]["max_steps"] == 4


def test_train_uses_the_free_cores_and_says_so(tmp_path, monkeypatch, capsys):
    """Beside one busy job on two cores the trainer runs one torch thread (not one per core), and logs why."""
    import torch

    from plm_interp import runtime
    from plm_interp.training.trainer import Trainer

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("PLM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    monkeypatch.setattr(runtime, "load_average", lambda: 1.0)
    seen, fit = [], Trainer.fit

    def spy(self, *a, **k):
        seen.append(torch.get_num_threads())
        return fit(self, *a, **k)

    monkeypatch.setattr(Trainer, "fit", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["train", "count_test", *BASE, "--run-dir", str(tmp_path / "run")]) == 0
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(before)
    assert seen == [1]
    assert "2 usable cores, 1.00 busy with other work -> 1 torch thread(s)" in capsys.readouterr().err


def test_a_run_saved_with_every_schemes_settings_resumes(tmp_path):
    """A config.json written before each scheme owned its settings lists them all (rel_max_distance and
    uni_window_rule on a rot model); resuming it with the same command is not a change of settings."""
    run_dir = tmp_path / "run"
    args = ["train", "count_test", *BASE, "--set", "model.positional=rot", "--set", "train.max_steps=6",
            "--run-dir", str(run_dir)]
    assert main(args) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert "rel_max_distance" not in saved["model"]
    saved["model"].update(rel_max_distance=128, uni_window_rule="2^h-1")  # the older, flat form
    (run_dir / "config.json").write_text(json.dumps(saved))
    shutil.rmtree(run_dir / "final")
    shutil.rmtree(run_dir / "checkpoints" / "step_00000006")
    assert main([*args, "--resume"]) == 0
    assert (run_dir / "final" / "config.json").is_file()
    assert main([*args, "--resume", "--set", "model.rotary_base=500.0"]) == 2  # a real change is still refused
