"""Issue 22: the GPU check runs end to end on CPU (--dry-run), its figures follow the stated formulas, and the
recipes' cost table reads its JSON (measured MFU) or says the MFU is assumed."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from plm_app import gpu_check

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["sdpa backends", "gpt2-small rot", "gpt2-small abs", "transformers GPT-2 (sdpa)",
          "gpt2-small rot + run_with_cache", "small rot", "small rot + run_with_cache", "dataloader starvation",
          "ddp 2 processes"]


def _recipe_cost():
    spec = importlib.util.spec_from_file_location("recipe_cost", ROOT / "bench" / "recipe_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry_run_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "report.json"
    # compile is rehearsed in test_gpu_rehearsal.py; here every other stage, DDP (2 gloo processes) included
    assert gpu_check.main(["--dry-run", "--no-compile", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_dry_run_runs_every_stage_on_cpu(dry_run_report):
    report = dry_run_report
    assert report["dry_run"] is True and report["environment"]["torch"]
    assert {name: status.startswith("ok") for name, status in report["stages"].items()} == dict.fromkeys(STAGES, True)
    assert [r["name"] for r in report["throughput"]] == STAGES[1:7]
    hooks = {r["name"]: r["hooks"] for r in report["throughput"]}
    assert hooks["gpt2-small rot + run_with_cache"] == "run_with_cache" and hooks["gpt2-small rot"] == "idle"
    assert report["environment"]["bf16_autocast_dtype"] == "torch.bfloat16"
    assert report["sdpa"]["in_use"] in report["sdpa"]["accepted"]
    assert report["sdpa"]["accepted"][report["sdpa"]["in_use"]] is True
    assert report["ddp"]["world_size"] == 2 and report["ddp"]["backend"] == "gloo"
    assert report["ddp"]["tokens_per_s"] > 0
    loader = report["dataloader"]
    assert loader["workers"] == 1 and loader["workers_0_tokens_per_s"] > 0 and loader["workers_1_tokens_per_s"] > 0
    assert report["adamw"] == ["default (for-loop on CPU)"]  # on a GPU: ["fused"]
    assert report["cost_table_mfu"] is None  # a CPU dry run never feeds the cost table, nor meets targets
    assert set(report["targets"].values()) == {None}
    ours_abs, hf = report["throughput"][1]["tokens_per_s"], report["throughput"][2]["tokens_per_s"]
    assert report["hooks_idle_vs_transformers_gpt2"] == pytest.approx(ours_abs / hf, rel=1e-3)


def test_flop_count_matches_a_hand_count_of_the_tiny_model(dry_run_report):
    row = dry_run_report["throughput"][0]  # tiny rot: 2 layers, d_model 32, 2 heads of 16, d_mlp 128, vocab 64
    d, h, e, m, v, layers, ctx = 32, 2, 16, 128, 64, 2, 32
    per_layer = 3 * h * d * e + 3 * h * e + h * e * d + d + 2 * 2 * d + d * m + m + m * d + d
    params = v * d + layers * per_layer + 2 * d + d * v + v
    assert row["params"] == params == 29632
    assert row["flops_per_token"] == 6 * params + 12 * layers * ctx * d


def test_mfu_is_model_flops_over_the_device_peak():
    shape = gpu_check.Shape("x", "tiny", 32, 4, 64)
    model = gpu_check.plm(shape)
    row = gpu_check.throughput_row("x", shape, model, rate=1000.0, peak=2.0)
    assert row["mfu"] == pytest.approx(1000.0 * row["flops_per_token"] / 2e12, abs=1e-4)
    assert gpu_check.peak_tflops("NVIDIA H200") == 989.0 and gpu_check.peak_tflops("Intel Xeon") is None
    assert gpu_check.peak_tflops("Intel Xeon", override=100.0) == 100.0


def test_check_refuses_to_run_without_a_gpu_unless_dry_run(monkeypatch):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device.*--dry-run"):
        gpu_check.run_check(dry_run=False)


def test_cost_table_uses_a_measured_mfu_and_refuses_a_dry_run(tmp_path, dry_run_report, capsys):
    rc = _recipe_cost()
    dry = tmp_path / "dry.json"
    dry.write_text(json.dumps(dry_run_report))
    with pytest.raises(ValueError, match="dry-run report"):
        rc.load_measured(dry)
    measured = tmp_path / "gpu.json"
    measured.write_text(json.dumps({**dry_run_report, "dry_run": False, "measured_at": "2026-12-01T00:00:00Z",
                                    "cost_table_mfu": {"mfu": 0.5, "from": "gpt2-small rot", "device": "NVIDIA H200",
                                                       "peak_bf16_tflops": 989.0}}))
    entry = rc.load_measured(measured)
    row = rc.cost(ROOT / "recipes" / "part1" / "cfg3f_rot.toml", (0.35,))
    assert rc.measured_hours(row, entry) == pytest.approx(row["hours"][0] * 0.35 / 0.5, rel=1e-12)  # same peak
    (tmp_path / "recipes" / "part1").mkdir(parents=True)  # one recipe keeps the table quick to build
    (tmp_path / "recipes" / "part1" / "cfg3f_rot.toml").write_text(
        (ROOT / "recipes" / "part1" / "cfg3f_rot.toml").read_text())
    rc.RECIPES = tmp_path / "recipes"
    rc.main(["--measured", str(measured)])
    out = capsys.readouterr().out
    assert out.startswith("MFU MEASURED: 50.0% on NVIDIA H200") and "measured h" in out
    line = next(x for x in out.splitlines() if x.startswith("part1/cfg3f_rot.toml"))
    assert line.split()[-3:] == [f"{row['hours'][0] * 0.35 / 0.5:.1f}", f"{row['hours'][0]:.1f}",
                                 f"{row['hours'][0] * 0.35 / 0.2:.1f}"]
    rc.MEASURED = tmp_path / "absent.json"  # no report: the table says the MFU is assumed
    rc.main([])
    assert capsys.readouterr().out.startswith("MFU ASSUMED (35%, 20%)")


def test_subcommand_module_registers_gpu_check_with_the_same_options():
    import argparse
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check_cmd", ROOT / "plm_app" / "commands" /
                                                  "gpu_check.py")
    command = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(command)
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["gpu-check", "--dry-run", "--steps", "3", "--peak-tflops", "100"])
    assert args.func is gpu_check.run
    assert (args.dry_run, args.steps, args.peak_tflops, args.no_compile, args.out) == (True, 3, 100.0, False, None)
