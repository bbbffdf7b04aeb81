"""Issue 20, the command-line findings 5, 9 and 10: every check before anything is written or computed, analyze's
output location and device, and one-line messages. Each test reproduces the finding (it failed before the fix)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "training"))
import train_helpers  # noqa: E402,F401  (registers the count_test task)

import analyses  # noqa: E402
from plm_interp import HookedPLM, preset_config  # noqa: E402
from plm_app.cli import main  # noqa: E402
from plm_interp.checkpoint import load_model  # noqa: E402
from tasks.cfg import CFGTask  # noqa: E402

BASE = ["--set", "model.preset=tiny", "--set", "model.n_ctx=16", "--set", "train.max_steps=2",
        "--set", "train.batch_size=4", "--set", "train.progress=false", "--set", "train.ckpt_every=1"]


def _cfg_model_dir(tmp_path: Path, name: str = "m") -> Path:
    task = CFGTask("demo")
    HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=96, seed=0, task=task.spec())).save_pretrained(
        tmp_path / name)
    return tmp_path / name


# ---- 5: every validation before config.json; the corrected command is then accepted --------------------------


def test_issue20_5_unavailable_device_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine: no CUDA
    for resume in ([], ["--resume"]):
        run_dir = tmp_path / f"run{len(resume)}"
        assert main(["train", "count_test", *BASE, "--set", "train.device=cuda", "--run-dir", str(run_dir),
                     *resume]) == 2
        assert "train.device" in capsys.readouterr().err
        assert not run_dir.exists()  # nothing written: no config.json to disagree with the corrected command
        assert main(["train", "count_test", *BASE, "--set", "train.device=cpu", "--run-dir", str(run_dir),
                     *resume]) == 0
        assert json.loads((run_dir / "config.json").read_text())["train"]["device"] == "cpu"


def test_issue20_5_model_too_large_to_build_refused_before_anything_is_written(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "count_test", *BASE, "--set", "model.d_vocab=1000000000000", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "d_vocab" in err and "Traceback" not in err
    assert not run_dir.exists()
    assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir), "--resume"]) == 0


def test_issue20_5_igsm_settings_without_data_refused_before_anything_is_written(tmp_path, capsys):
    run_dir = tmp_path / "run"
    igsm = ["train", "igsm", "--set", "task.preset=tiny", "--set", "model.preset=tiny", "--set", "model.n_ctx=192",
            "--set", "train.max_steps=1", "--set", "train.batch_size=2", "--set", "train.progress=false",
            "--run-dir", str(run_dir)]
    assert main([*igsm, "--set", "task.letters=1"]) == 2  # no op >= 2 solution fits in one letter
    err = capsys.readouterr().err
    assert err.startswith("plm-interp train: error: [task]") and "Traceback" not in err
    assert not run_dir.exists()
    assert main([*igsm, "--resume"]) == 0 and (run_dir / "final" / "model.safetensors").is_file()


# ---- 9: analyze's output location and device ---------------------------------------------------------------


def test_issue20_9_out_that_is_a_file_is_refused_before_loading_or_computing(tmp_path, capsys):
    out = tmp_path / "result.txt"
    out.write_text("keep me")
    # the model does not exist: the output check must come first, so the message is about --out
    assert main(["analyze", "generation", "--model", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "is an existing file" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main(["analyze", "generation", "--model", str(tmp_path / "nowhere"), "--out", str(out / "sub")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_issue20_9_unwritable_location_is_refused_before_computing(tmp_path, capsys, monkeypatch):
    import plm_app.commands.analyze as analyze

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(analyze.tempfile, "TemporaryFile", read_only)  # a read-only place (we may run as root)
    monkeypatch.setattr(analyses, "run", lambda *a, **k: pytest.fail("computed before checking the output"))
    model = _cfg_model_dir(tmp_path)
    assert main(["analyze", "generation", "--model", str(model), "--out", str(tmp_path / "ro" / "x")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_issue20_9_default_output_is_under_the_current_directory(tmp_path, capsys, monkeypatch):
    model = _cfg_model_dir(tmp_path / "store", "final")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["analyze", "generation", "--model", str(model), "--set", "n=4", "--set", "kl_strings=2",
                 "--set", "progress=false"]) == 0
    assert (work / "runs" / "final" / "analyses" / "generation" / "result.json").is_file()
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.safetensors"]  # nothing beside it


def test_issue20_9_checkpoint_recorded_on_cuda_loads_on_cpu(tmp_path, capsys):
    model = _cfg_model_dir(tmp_path)
    meta = json.loads((model / "config.json").read_text())
    meta["config"]["device"] = "cuda"  # as a GPU run records it
    (model / "config.json").write_text(json.dumps(meta))
    assert load_model(model).W_E.device.type == "cpu"
    assert main(["analyze", "generation", "--model", str(model), "--set", "n=4", "--set", "kl_strings=2",
                 "--set", "progress=false", "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "result.json").is_file()


def test_issue20_9_device_option_is_checked_before_loading(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["analyze", "generation", "--model", str(tmp_path / "nowhere"), "--device", "cuda"]) == 2
    assert "--device" in capsys.readouterr().err


# ---- 10: clear messages ------------------------------------------------------------------------------------


def test_issue20_10_set_value_of_the_wrong_type_names_the_key_and_the_value(tmp_path, capsys):
    assert main(["analyze", "generation", "--model", str(tmp_path / "nowhere"), "--set", "n=abc"]) == 2
    err = capsys.readouterr().err
    assert "n = 'abc'" in err and "int" in err and "not supported" not in err


def test_issue20_10_layers_all_in_any_case_is_understood_and_other_words_refused(tmp_path, capsys):
    assert analyses.registry.check_options("nt_probe", {"layers": "ALL"}) == {"layers": "all"}
    assert analyses.registry.check_options("v_probe", {"layer": " All "}) == {"layer": "all"}
    assert main(["analyze", "nt_probe", "--model", str(tmp_path / "nowhere"), "--set", "layers=last"]) == 2
    assert "layers = 'last'" in capsys.readouterr().err


def test_issue20_10_checkpoint_error_reaches_the_user_as_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "count_test", *BASE, "--run-dir", str(run_dir)]) == 0
    for f in (run_dir / "checkpoints").rglob("*"):
        if f.is_file():
            f.write_bytes(b"damaged")
    capsys.readouterr()
    assert main(["train", "count_test", "--run-dir", str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("plm-interp train: error: no valid checkpoint") and "Traceback" not in "".join(err)
