"""Issue 35, class "silently wrong": configs that cannot learn, resume identity, model arguments, checkpoints.

Each case used to run to exit 0 (or give a number) without a word; each must now be a named refusal (or a
warning with the numbers) or a correct result. Test names carry the fault class.
"""
from __future__ import annotations

import json
import math
import os
import shutil

import pytest
import torch
import train_helpers  # noqa: F401  (registers the count_test task)
from train_helpers import small_config, source, state_equal, tiny_model

from plm_app.cli import main
from plm_interp.config import ConfigError, PLMConfig
from plm_interp.training import TrainConfig, Trainer
from plm_interp.training import checkpointing as ckpt

BASE = ["--set", "model.preset=tiny", "--set", "model.n_ctx=16", "--set", "train.max_steps=4",
        "--set", "train.batch_size=4", "--set", "train.progress=false", "--set", "train.ckpt_every=2"]


# -- numeric ranges that can learn ----------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("adam_eps", math.inf), ("adam_eps", 1e30), ("lr", 1e300),
                                          ("lr", math.nan), ("weight_decay", math.inf)])
def test_ranges_that_can_learn_train_values_are_refused_by_name(field, value):
    with pytest.raises(ConfigError, match=f"train.{field} = "):
        TrainConfig(max_steps=3, **{field: value})


def test_ranges_that_can_learn_lr_times_weight_decay():
    with pytest.raises(ConfigError, match=r"train.lr \* train.weight_decay"):
        TrainConfig(max_steps=3, lr=0.5, weight_decay=2.0)
    TrainConfig(max_steps=3, lr=1e-3, weight_decay=0.1)  # ordinary values still pass


@pytest.mark.parametrize("eps", [1e30, 1.0])
def test_ranges_that_can_learn_layernorm_eps(eps):
    with pytest.raises(ConfigError, match="'eps'"):
        PLMConfig(d_model=16, n_layers=1, n_heads=2, d_vocab=8, n_ctx=8, eps=eps)


def test_ranges_that_can_learn_warmup_beyond_the_run_is_warned_with_numbers():
    with pytest.warns(UserWarning, match=r"warmup_steps = 1000 is more than the run's 3 steps: .* 0.3%"):
        Trainer(tiny_model(), source(), small_config(max_steps=3, warmup_steps=1000))


def test_ranges_that_can_learn_igsm_window_where_few_problems_fit(tmp_path, capsys):
    from tasks.igsm.task import IGSMTask

    task = IGSMTask("hard")
    with pytest.raises(ValueError, match=r"'n_ctx' = 128: only \d+ of 64 drawn problems \(\d+%\) fit"):
        next(task.batches(2, n_ctx=128))
    with pytest.warns(UserWarning, match=r"'n_ctx' = 256: only \d+ of 64"):
        next(task.batches(2, n_ctx=256))
    run_dir = tmp_path / "run"
    assert main(["train", "igsm", "--set", "task.preset=hard", "--set", "model.preset=tiny", "--set",
                 "model.n_ctx=64", "--set", "train.max_steps=1", "--set", "train.batch_size=2", "--set",
                 "train.progress=false", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "n_ctx" in err and "64" in err and "Traceback" not in err
    assert not run_dir.exists()


# -- resume identity -------------------------------------------------------------------------------------------

def _first_run(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir)]) == 0
    shutil.rmtree(run_dir / "final")
    (run_dir / "config.json").unlink()
    return run_dir


def test_resume_identity_config_json_removed_and_other_lr_is_refused(tmp_path, capsys):
    """config.json removed, then --resume with another lr: the optimizer and schedule would come from the
    checkpoint while config.json recorded the new lr. Refused before config.json is written."""
    run_dir = _first_run(tmp_path)
    assert main(["train", "count_test", *BASE, "--set", "train.lr=0.01", "--run-dir", str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "train.lr: checkpoint 0.0003, now 0.01" in err and "config.json" in err and "Traceback" not in err
    assert not (run_dir / "config.json").exists()
    # the settings it was trained with resume it
    assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir), "--resume"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["train"]["lr"] == 3e-4


def test_resume_identity_checkpoint_of_another_shape_is_named(tmp_path, capsys):
    run_dir = _first_run(tmp_path)
    assert main(["train", "count_test", *BASE, "--set", "model.d_model=64", "--set", "model.n_heads=2",
                 "--run-dir", str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "shape" in err and "state.pt" in err and "Traceback" not in err
    # the Python API names the checkpoint too (no bare load_state_dict RuntimeError)
    from plm_interp import HookedPLM, preset_config
    bigger = HookedPLM(preset_config("tiny", d_vocab=16, n_ctx=16, d_model=64, n_heads=2))
    cfg = TrainConfig(max_steps=4, batch_size=4, progress=False, ckpt_every=2)  # the CLI run's settings
    with pytest.raises(ckpt.CheckpointError, match="do not fit this model"):
        Trainer(bigger, source(), cfg, run_dir).fit(resume=True)


def test_resume_identity_api_refuses_other_training_settings(tmp_path):
    Trainer(tiny_model(), source(), small_config(max_steps=8), tmp_path).fit()
    shutil.rmtree(tmp_path / "checkpoints" / "step_00000008")
    with pytest.raises(ValueError, match=r"train.lr: checkpoint 0.003, now 0.01"):
        Trainer(tiny_model(), source(), small_config(max_steps=8, lr=0.01), tmp_path).fit(resume=True)


def test_resume_identity_threads_are_recorded_and_reused(tmp_path, monkeypatch):
    """Every checkpoint records the torch thread count; a resume on CPU trains with it (CPU sums depend on the
    thread count in the last bits), and ends with the uninterrupted run's weights."""
    monkeypatch.delenv("PLM_THREADS", raising=False)
    before = torch.get_num_threads()
    seen = []

    def loss_fn(model, batch):
        seen.append(torch.get_num_threads())
        return model(batch["tokens"], return_type="loss", loss_mask=batch.get("loss_mask"))
    try:
        torch.set_num_threads(2)
        straight = Trainer(tiny_model(), source(), small_config(max_steps=8), tmp_path / "a")
        straight.fit()
        state = torch.load(tmp_path / "a" / "checkpoints" / "step_00000008" / "state.pt", weights_only=True)
        assert state["torch_threads"] == 2
        Trainer(tiny_model(), source(), small_config(max_steps=8), tmp_path / "b").fit()
        shutil.rmtree(tmp_path / "b" / "checkpoints" / "step_00000008")  # as if killed after step 4's checkpoint
        torch.set_num_threads(1)  # a busy machine at restart
        resumed = Trainer(tiny_model(), source(), small_config(max_steps=8), tmp_path / "b", loss_fn=loss_fn)
        resumed.fit(resume=True)
        assert seen and set(seen) == {2}
        assert state_equal(resumed.model.state_dict(), straight.model.state_dict())
    finally:
        torch.set_num_threads(before)


def test_resume_identity_is_documented_in_what_we_guarantee():
    """docs/training.md states what the tests above check; a change to one must change the other."""
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "training.md")).read()
    section = text.split("## What we guarantee", 1)[1].split("\n## ", 1)[0]
    for words in ("**Atomicity.**", "**Resume identity.**", "**Concurrency.**", "**Validation before any write.**",
                  "`result.json`", "done-marker", "bit-identical", "thread count is recorded in every checkpoint",
                  "PLM_THREADS", "under the lock", "already holds a run", "`train_config`"):
        assert words in section, words


# -- model argument checks -------------------------------------------------------------------------------------

def test_model_argument_checks_loss_with_an_all_false_mask():
    model = tiny_model()
    tokens = torch.randint(0, 16, (2, 8))
    with pytest.raises(ValueError, match="loss_mask selects no predicted token"):
        model(tokens, return_type="loss", loss_mask=torch.zeros(2, 8, dtype=torch.bool))
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 3] = True
    assert torch.isfinite(model(tokens, return_type="loss", loss_mask=mask))


@pytest.mark.parametrize("return_type", ["loss", "both"])
def test_model_argument_checks_one_token_loss(return_type):
    with pytest.raises(ValueError, match="at least 2 tokens"):
        tiny_model()(torch.tensor([[3]]), return_type=return_type)
    from plm_interp import HookedPLM, preset_config
    one = HookedPLM(preset_config("tiny", d_vocab=16, n_ctx=1))
    with pytest.raises(ValueError, match="n_ctx = 1"):
        one(torch.tensor([[3]]), return_type="loss")


@pytest.mark.parametrize("layer, error", [(-99, ValueError), (99, ValueError), (True, TypeError)])
def test_model_argument_checks_stop_at_layer_out_of_range(layer, error):
    model = tiny_model()
    with pytest.raises(error, match="stop_at_layer"):
        model(torch.randint(0, 16, (1, 4)), stop_at_layer=layer)
    n = model.cfg.n_layers
    assert model(torch.randint(0, 16, (1, 4)), stop_at_layer=-n).shape[-1] == model.cfg.d_model  # TL's negatives


# -- checkpoints -----------------------------------------------------------------------------------------------

def _saved(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def test_checkpoint_format_version_mismatch_is_refused(tmp_path):
    from plm_interp.checkpoint import CheckpointError, load_model
    path = _saved(tmp_path)
    meta = json.loads((path / "config.json").read_text())
    meta["format_version"] = 99
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"config.json: format_version = 99"):
        load_model(path)


def test_checkpoint_non_float_weights_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from plm_interp.checkpoint import CheckpointError, load_model
    path = _saved(tmp_path)
    state = load_file(str(path / "model.safetensors"))
    state = {k: v.to(torch.int64) for k, v in state.items()}
    save_file(state, str(path / "model.safetensors"))
    meta = json.loads((path / "config.json").read_text())
    meta.pop("weights_sha256")
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model.safetensors: key .* holds torch.int64"):
        load_model(path)


def test_checkpoint_non_utf8_config_is_named(tmp_path, capsys):
    from plm_interp.checkpoint import CheckpointError, load_model
    path = _saved(tmp_path)
    (path / "config.json").write_bytes(b"\xff\xfe{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(path)
    # a run's config.json and metrics.jsonl: the train command names the file
    run_dir = tmp_path / "run"
    assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir)]) == 0
    good = (run_dir / "config.json").read_bytes()
    (run_dir / "config.json").write_bytes(b"\xff" + good)
    assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "config.json is not UTF-8" in err and "Traceback" not in err
    (run_dir / "config.json").write_bytes(good)
    (run_dir / "metrics.jsonl").write_bytes(b'{"step": 1}\n\xff\xfe garbage\n{"step": 2}\n')
    from plm_interp.training import read_metrics
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2"):
        read_metrics(run_dir)
    (run_dir / "metrics.jsonl").write_bytes(b'{"step": 1}\n{"step": 2, "lo')  # a kill mid-write: tolerated
    assert [r["step"] for r in read_metrics(run_dir)] == [1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_checkpoint_device_cuda_on_a_cpu_machine_is_named(tmp_path):
    from plm_interp import HookedPLM
    from plm_interp.checkpoint import load_model
    path = _saved(tmp_path)
    with pytest.raises(ConfigError, match="load_model field 'device' = 'cuda' but CUDA is not available"):
        load_model(path, device="cuda")
    cfg = tiny_model().cfg.replace(device="cuda")
    with pytest.raises(ConfigError, match="config field 'device' = 'cuda' but CUDA is not available"):
        HookedPLM(cfg)


def test_model_argument_checks_n_ctx_1_refused_before_config_json(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = [a if a != "model.n_ctx=16" else "model.n_ctx=1" for a in BASE]
    assert main(["train", "count_test", *argv, "--run-dir", str(run_dir)]) == 2
    assert "model.n_ctx = 1" in capsys.readouterr().err
    assert not run_dir.exists()


def test_resume_identity_first_metrics_record_after_resume_averages_the_same_steps(tmp_path):
    """A stop between log steps (SIGTERM, or a checkpoint that is not a log step) used to restart the loss average:
    the first record after the resume averaged only the steps since the restart."""
    from plm_interp.training import read_metrics

    cfg = dict(max_steps=8, log_every=4, ckpt_every=2, keep_checkpoints=5)
    Trainer(tiny_model(), source(), small_config(**cfg), tmp_path / "a").fit()
    Trainer(tiny_model(), source(), small_config(**cfg), tmp_path / "b").fit()
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step_00000008")  # killed after step 6's checkpoint
    Trainer(tiny_model(), source(), small_config(**cfg), tmp_path / "b").fit(resume=True)
    straight, resumed = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["step"] for r in resumed] == [4, 8]
    assert resumed[1]["loss"] == straight[1]["loss"]  # steps 5..8, not 7..8
