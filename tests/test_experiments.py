"""The experiment layer (plm_app.experiments): specs validate, every spec runs end to end at the tiny scale,
re-issuing the command skips finished work and resumes unfinished runs, run names mean one command, the paper
scale is the recipes, and the table is rebuilt correctly from planted run directories."""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from plm_app import experiments
from plm_app.commands import experiment as command
from plm_app.experiments import runner, scales, table
from plm_app.experiments.spec import RECIPES, Analysis, Arm, Experiment, Metric, Shipped, Train

NAMES = list(experiments.EXPERIMENTS)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["experiment", *argv])
    return args.func(args)


def test_list_shows_every_comparison_of_the_issue(capsys):
    assert cli("--list") == 0
    out = capsys.readouterr().out
    for name in ("part1_schemes", "part1_corrupted", "part2_1_vprobes", "part2_1_depth_width",
                 "part2_2_lora_vs_full", "part2_2_retry_pretrain", "part2_2_retry_weak"):
        assert name in out
    labels = {e.name: [a.label for a in e.arms] for e in experiments.EXPERIMENTS.values()}
    assert labels["part1_schemes"] == ["abs", "rot", "rel", "pos", "uni", "none", "encoder"]
    assert labels["part1_corrupted"] == ["clean", "corrupt 0.1"]
    assert labels["part2_2_retry_weak"] == ["clean", "weak p=0.1", "weak p=0.5"]
    probes = {a.options("cpu")["probe"] for a in experiments.get("part2_1_vprobes").analyses}
    assert probes == {"nece", "dep", "known", "value", "can_next", "nece_next"}
    lora = experiments.get("part2_2_lora_vs_full").arms
    assert "train.lora" in lora[1].cpu.sets and "train.lora" not in lora[2].cpu.sets
    assert lora[1].cpu.after == lora[2].cpu.after == lora[0].cpu  # both from the same error-free model
    assert {k: v for k, v in lora[1].cpu.sets.items() if k != "train.lora"} == lora[2].cpu.sets  # same data/steps


@pytest.mark.parametrize("name", NAMES)
def test_every_spec_validates(name):
    experiments.get(name).validate()


def test_equal_budget_and_equal_parameters_where_the_comparison_needs_them():
    from plm_app.commands import train as train_cli

    def resolved(run: Train):
        args = argparse.Namespace(task=run.kind, config=None, preset=run.preset,
                                  overrides=[a for a in scales.train_argv(run, "cpu", 0, Path("/x"))[2:]
                                             if "=" in a and not a.startswith("train.init_from")])
        return train_cli.resolve_args(args)

    schemes = [resolved(a.cpu) for a in experiments.get("part1_schemes").arms]
    assert len({(c.train.max_steps, c.train.batch_size, c.model.n_ctx) for c in schemes}) == 1
    deep, wide = (a.cpu.chain()[0] for a in experiments.get("part2_1_depth_width").arms)
    d, w = resolved(deep).model, resolved(wide).model
    assert 12 * d.n_layers * d.d_model ** 2 == 12 * w.n_layers * w.d_model ** 2 == 884_736
    assert d.d_mlp == 4 * d.d_model and w.d_mlp == 4 * w.d_model  # so 12 * layers * width^2 is the count


def test_a_run_name_means_one_command_across_experiments():
    for scale in ("tiny", "cpu", "paper"):
        commands: dict[Path, list[str]] = {}
        for exp in experiments.EXPERIMENTS.values():
            for step in runner.plan(exp, scale, Path("runs")):
                if step.kind == "train":
                    assert commands.setdefault(step.directory, step.argv) == step.argv, step.directory
                else:  # an analysis output shared by two experiments must be the same analysis
                    key = step.output
                    assert commands.setdefault(key, [step.describe()]) == [step.describe()], key
    shared = [s.directory.name for s in runner.plan(experiments.get("part1_corrupted"), "cpu", Path("r"))
              if s.kind == "train"]
    assert "cfg-demo-rot-s0" in shared  # the clean arm is part1_schemes' rot run, trained once


def _make_recipes():
    spec = importlib.util.spec_from_file_location("make_recipes", RECIPES / "make_recipes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_paper_scale_is_the_recipes():
    files = _make_recipes().render_all()
    for exp in experiments.EXPERIMENTS.values():
        for arm in exp.arms:
            src = arm.paper
            assert isinstance(src, Train) and src.recipe in files, (exp.name, arm.label)
            for run in src.chain():
                assert run.recipe in files and not run.sets and run.preset is None  # nothing beside the recipe
    on_disk = {p.relative_to(RECIPES).as_posix(): p.read_text() for p in RECIPES.glob("comparisons/*.toml")}
    assert on_disk == {k: v for k, v in files.items() if k.startswith("comparisons/")}, \
        "run: python recipes/make_recipes.py"
    lora = tomllib.loads(files["comparisons/igsm_med_qp_retry_lora_r8.toml"])["train"]
    full = tomllib.loads(files["comparisons/igsm_med_qp_retry_full.toml"])["train"]
    # Part 2.2 App. D.3: LoRA rank r on W_Q / W_V and 2r on the embedding, 200k steps at batch 256, lr 0.001,
    # wd 0.05; full fine-tuning with as many tokens as pretraining (med: 512 x 100k). Alpha 16 is ours.
    assert lora.pop("lora") == {"rank": 8, "alpha": 16, "targets": ["W_Q", "W_V", "W_E"]}
    assert (lora.pop("batch_size"), lora.pop("max_steps"), full.pop("batch_size"), full.pop("max_steps")) == \
        (256, 200_000, 512, 100_000)
    assert lora == full and (lora["lr"], lora["weight_decay"]) == (1e-3, 0.05)
    for name in ("lora_r8", "full"):  # the main LoRA-vs-full figure (Fig. 7) is at retry p = 0.2
        assert tomllib.loads(files[f"comparisons/igsm_med_qp_retry_{name}.toml"])["task"]["retry_p"] == 0.2


@pytest.mark.parametrize("value", ["demo", 1.5e-3, 3, True, [0.9, 0.98], {"rank": 8, "targets": ["W_Q", "W_V"]},
                                   'a "quoted" \\ string'])
def test_set_values_read_back_as_toml(value):
    assert tomllib.loads(f"v = {scales.toml_value(value)}")["v"] == value


def test_tiny_scale_keeps_a_continued_run_on_its_source_architecture():
    full = experiments.get("part2_2_lora_vs_full").arms[2].cpu
    assert not any(k.startswith("model.") for k in scales.train_sets(full, "tiny"))
    first = experiments.get("part2_2_retry_weak").arms[1].cpu.chain()[0]
    sets = scales.train_sets(first, "tiny")
    assert (sets["model.n_layers"], sets["model.d_model"], sets["train.max_steps"]) == (1, 16, 2)


# ---- end to end at the tiny scale ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("experiments")


@pytest.mark.parametrize("name", NAMES)
def test_every_spec_runs_end_to_end_at_tiny_scale(name, runs, capsys):
    exp = experiments.get(name)
    assert cli(name, "--scale", "tiny", "--runs-dir", str(runs)) == 0
    out = json.loads((runs / "_tables" / name / "table.json").read_text())
    assert [r["arm"] for r in out["rows"]] == [a.label for a in exp.arms]
    assert all(r["seeds done"] == "1/1" for r in out["rows"]), out["rows"]  # every metric has a number
    assert (runs / "_tables" / name / "plot.png").stat().st_size > 0
    for step in runner.plan(exp, "tiny", runs):
        assert step.done
    before = (runs / "_tables" / name / "table.md").read_text()
    capsys.readouterr()
    assert cli(name, "--scale", "tiny", "--runs-dir", str(runs)) == 0  # re-issued: everything skipped
    assert "0 step(s) run" in capsys.readouterr().err
    assert (runs / "_tables" / name / "table.md").read_text() == before


def test_an_interrupted_run_is_resumed_by_reissuing_the_command(runs, capsys):
    exp = experiments.get("part1_corrupted")
    cli(exp.name, "--scale", "tiny", "--runs-dir", str(runs))
    victim = runs / "cfg-demo-rot-corrupt_frac0.1-s0"
    shutil.rmtree(victim / "final")  # killed after its last checkpoint, before the final model was written
    assert (victim / "checkpoints").is_dir()
    capsys.readouterr()
    assert cli(exp.name, "--scale", "tiny", "--runs-dir", str(runs), "--dry-run") == 0
    assert "[partial] plm-interp train cfg" in capsys.readouterr().out
    assert cli(exp.name, "--scale", "tiny", "--runs-dir", str(runs)) == 0
    err = capsys.readouterr().err
    assert "1 step(s) run" in err and "--resume" in err  # only the unfinished run, continued, not restarted
    assert (victim / "final" / "model.safetensors").is_file()
    records = [json.loads(x) for x in (victim / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]  # no step trained twice


def test_sigterm_mid_training_exits_143_with_a_checkpoint_and_reissuing_finishes_without_retraining(
        tmp_path, monkeypatch, capsys):
    import os
    import signal

    from plm_interp.training import metrics as metrics_module

    log = metrics_module.MetricsLog.log

    def log_then_term(self, record):  # a scheduler's SIGTERM, just after the first run's step 1 is logged
        log(self, record)
        if record.get("step") == 1:
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(metrics_module.MetricsLog, "log", log_then_term)
    from plm_app.cli import main  # the program's entry point: it turns the stop into the exit code

    assert main(["experiment", "part1_corrupted", "--scale", "tiny", "--runs-dir", str(tmp_path)]) == 143
    assert "stopped by SIGTERM after step 1" in capsys.readouterr().err
    stopped = [d for d in tmp_path.iterdir() if (d / "checkpoints" / "step_00000001").is_dir()]
    assert len(stopped) == 1 and not (stopped[0] / "final").exists()
    monkeypatch.setattr(metrics_module.MetricsLog, "log", log)
    assert cli("part1_corrupted", "--scale", "tiny", "--runs-dir", str(tmp_path)) == 0
    assert "resumed from" in capsys.readouterr().err
    records = [json.loads(x) for x in (stopped[0] / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]  # step 1 was kept, not trained again


def test_an_analysis_whose_options_changed_is_run_again_and_the_old_result_kept(tmp_path, monkeypatch, capsys):
    name, runs = "part1_corrupted", tmp_path / "runs"
    exp = experiments.get(name)
    assert cli(name, "--scale", "tiny", "--runs-dir", str(runs)) == 0
    n_robustness = sum(1 for s in runner.plan(exp, "tiny", runs) if s.kind == "analyze")
    options = {**scales.TINY_OPTIONS, "robustness": {**scales.TINY_OPTIONS["robustness"], "n": 3}}
    monkeypatch.setattr(scales, "TINY_OPTIONS", options)  # the spec's options change after the campaign ran
    capsys.readouterr()
    assert cli(name, "--scale", "tiny", "--runs-dir", str(runs), "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.count("[stale] plm-interp analyze robustness") == n_robustness and "[stale] plm-interp train" not in out
    assert cli(name, "--scale", "tiny", "--runs-dir", str(runs)) == 0
    err = capsys.readouterr().err
    assert f"{n_robustness} step(s) run" in err and "its options changed since it ran" in err
    for step in runner.plan(exp, "tiny", runs):
        assert step.done and step.stale is None
        if step.kind == "analyze":
            assert json.loads(step.output.read_text())["settings"]["n"] == 3  # the new measure
            old = step.output.parent.with_name("robustness.superseded-1") / "result.json"
            assert json.loads(old.read_text())["settings"]["n"] == 2  # the old one, kept beside it


def test_estimate_counts_tokens_from_the_config_and_times_real_steps():
    from plm_app.experiments.estimate import estimate

    costs = estimate(experiments.get("part1_corrupted"), "tiny", steps=2, report=lambda m: None)
    assert [c.name for c in costs] == ["cfg-demo-rot", "cfg-demo-rot-corrupt_frac0.1"]
    assert all(c.tokens == 2 * 2 * 128 and c.tokens_per_s > 0 for c in costs)  # 2 steps x 2 x n_ctx 128
    one = estimate(experiments.get("part1_corrupted"), "tiny", steps=2, report=lambda m: None, arms=["corrupt 0.1"])
    assert [c.name for c in one] == ["cfg-demo-rot-corrupt_frac0.1"]


# ---- validation ---------------------------------------------------------------------------------------------

def _exp(**changes) -> Experiment:
    base = Experiment("probe_test", "t", "p", arms=(Arm("a", Shipped("igsm-small"), Shipped("igsm-small")),),
                      analyses=(Analysis("ev", "retry_eval", cpu={"n": 4}),),
                      metrics=(Metric("acc", "ev", lambda r: 0.0),))
    return replace(base, **changes)


@pytest.mark.parametrize("changes, field", [
    (dict(analyses=(Analysis("ev", "no_such_analysis"),)), "analyses['ev'].name"),
    (dict(analyses=(Analysis("ev", "retry_eval", cpu={"bogus": 1}),)), "analyses['ev'].cpu"),
    (dict(metrics=(Metric("acc", "missing", lambda r: 0.0),)), "metrics['acc'].analysis"),
    (dict(metrics=(Metric("acc", "ev", lambda r: 0.0, paper={"b": "1"}),)), "metrics['acc'].paper"),
    (dict(arms=(Arm("a", Shipped("no-such-model"), Shipped("igsm-small")),)), "arms['a'].cpu"),
    (dict(arms=(Arm("a", Train("r", "igsm", recipe="part9/none.toml"), Shipped("igsm-small")),)),
     "arms['a'].cpu.recipe"),
    (dict(arms=(Arm("a", Train("r", "igsm", sets={"train.seed": 1}), Shipped("igsm-small")),)),
     "arms['a'].cpu.sets"),
    (dict(arms=(Arm("a", Train("r", "igsm", sets={"model.n_layers": 2}, after=Shipped("igsm-small")),
                    Shipped("igsm-small")),)), "arms['a'].cpu.after"),
    (dict(seeds={"cpu": (0, 0), "paper": (0,)}), "seeds['cpu']"),
])
def test_a_bad_spec_is_refused_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        _exp(**changes).validate()


def test_unknown_experiment_and_bad_options_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="'nope' is not defined"):
        cli("nope", "--runs-dir", str(tmp_path / "r"))
    with pytest.raises(ValueError, match="--estimate-steps = 1"):
        cli("part1_corrupted", "--estimate", "--estimate-steps", "1", "--runs-dir", str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


# ---- the table, from planted run directories -----------------------------------------------------------------

def _plant(directory: Path, key: str, result: dict, tokens: int | None = None, seconds: dict | None = None):
    out = directory / "analyses" / key
    out.mkdir(parents=True)
    (out / "result.json").write_text(json.dumps(result))
    if tokens is not None:
        (directory / "final").mkdir()
        (directory / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0, "tokens": tokens // 2}) + "\n"
                                                 + json.dumps({"step": 2, "loss": 0.9, "tokens": tokens}) + "\n"
                                                 + json.dumps({"step": 2, "eval/x": 1.0}) + "\n")
    for kind, (k, s) in (seconds or {}).items():
        with open(directory / runner.LOG, "a") as f:
            f.write(json.dumps({"kind": kind, "key": k, "seconds": s}) + "\n")


def _robust(acc_t01: float, acc_t1: float) -> dict:
    return {"records": [{"rate": 0.15, "temperature": 0.1, "accuracy": acc_t01},
                        {"rate": 0.15, "temperature": 1.0, "accuracy": acc_t1}]}


def test_table_is_rebuilt_from_planted_run_directories(tmp_path):
    stage1 = Train("s1", "cfg", preset="small", sets={"model.positional": "rot"})
    exp = Experiment(
        "planted", "Planted", "nowhere",
        arms=(Arm("chained", Train("s2", "cfg", sets={"train.lr": 1e-3}, after=stage1), stage1),
              Arm("missing", Train("m", "cfg", preset="small"), stage1)),
        analyses=(Analysis("robustness", "robustness"),),
        metrics=(Metric("T=0.1", "robustness", lambda r: next(x["accuracy"] for x in r["records"]
                                                              if x["temperature"] == 0.1), {"chained": "80"}),
                 Metric("T=1", "robustness", lambda r: next(x["accuracy"] for x in r["records"]
                                                            if x["temperature"] == 1.0),
                        controls={"ctl": lambda r: r["control"]})),
        seeds={"cpu": (0, 1, 2), "paper": (0,)})
    res0, res1 = _robust(0.5, 0.25), _robust(0.75, 0.5)
    res1["control"] = 0.125  # seed 0 has no control value: the control is averaged over seed 1 only
    _plant(tmp_path / "s1-s0", "unrelated", {}, tokens=1000, seconds={"train": (None, 30.0)})
    _plant(tmp_path / "s2-s0", "robustness", res0, tokens=500, seconds={"train": (None, 60.0),
                                                                         "analyze": ("robustness", 6.0)})
    _plant(tmp_path / "s1-s1", "unrelated", {}, tokens=1000)
    _plant(tmp_path / "s2-s1", "robustness", res1, tokens=700)
    with open(tmp_path / "s2-s1" / runner.LOG, "a") as f:  # another experiment's analysis: not this table's time
        f.write(json.dumps({"kind": "analyze", "key": "other", "seconds": 1000.0}) + "\n")
    tab = table.build(exp, "cpu", tmp_path)
    rows = {r["arm"]: r for r in tab.rows()}
    chained = rows["chained"]
    assert chained["T=0.1 (ours)"] == "62.5 (50.0–75.0, n=2)" and chained["T=0.1 (paper)"] == "80"
    assert chained["T=1 (ours)"] == "37.5 (25.0–50.0, n=2); ctl 12.5"
    assert chained["seeds done"] == "2/3"
    assert chained["tokens per model"] == "1.6k"  # (1000 + 500 + 1000 + 700) / 2: both stages, per seed
    assert chained["wall time"] == "96 s"  # 30 + 60 + 6, not the other experiment's 1000 s
    assert rows["missing"]["T=0.1 (ours)"] == table.NOT_RUN and rows["missing"]["seeds done"] == "0/3"
    assert rows["missing"]["T=1 (paper)"] == "—"
    out = table.write(tab, tmp_path)
    assert "| chained | 62.5 (50.0–75.0, n=2) | 80 |" in (out / "table.md").read_text()
    assert json.loads((out / "table.json").read_text())["values"]["chained"]["T=0.1"]["values"] == [0.5, 0.75]


def test_the_wall_time_of_a_resumed_run_counts_every_sitting(tmp_path):
    """Trained in two sittings (the log holds only the second's 40 s): the trainer's rates give 100 tokens at
    10/s + 100 at 5/s + 200 at 5/s = 70 s of training, plus the 6 s analysis."""
    run = Train("r", "cfg", preset="small")
    exp = Experiment("resumed", "Resumed", "nowhere", arms=(Arm("a", run, run),),
                     analyses=(Analysis("robustness", "robustness"),),
                     metrics=(Metric("T=1", "robustness", lambda r: r["records"][1]["accuracy"]),),
                     seeds={"cpu": (0,), "paper": (0,)})
    d = tmp_path / "r-s0"
    _plant(d, "robustness", _robust(0.5, 0.25), seconds={"train": (None, 40.0), "analyze": ("robustness", 6.0)})
    (d / "final").mkdir()
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"step": 1, "loss": 1.0, "tokens": 100, "tokens_per_s": 10.0},
        {"step": 2, "loss": 0.9, "tokens": 200, "tokens_per_s": 5.0},  # the checkpoint the second sitting resumed
        {"step": 3, "eval/x": 1.0},
        {"step": 4, "loss": 0.8, "tokens": 400, "tokens_per_s": 5.0})))
    assert table.build(exp, "cpu", tmp_path).rows()[0]["wall time"] == "76 s"


@pytest.mark.parametrize("text, number", [("≈ 80", 80.0), ("up to 94.5", 94.5), ("99+ (op=23: 94.7)", 99.0),
                                          ("0.00455", 0.00455), ("collapses", None), (None, None)])
def test_paper_cells_plot_at_their_first_number(text, number):
    assert table._number(text) == number


def test_a_single_seed_proportion_carries_its_wilson_interval(tmp_path):
    """One seed's 85/100 shows the 95% Wilson interval computed by hand: centre (p + z²/2n)/(1 + z²/n)."""
    import math

    stage = Train("one", "cfg", preset="small")
    exp = Experiment("single", "Single", "nowhere", arms=(Arm("a", stage, stage),),
                     analyses=(Analysis("robustness", "robustness"),),
                     metrics=(Metric("acc", "robustness", lambda r: r["acc"], count=lambda r: r["n"]),),
                     seeds={"cpu": (0,), "paper": (0,)})
    _plant(tmp_path / "one-s0", "robustness", {"acc": 0.85, "n": 100}, tokens=10)
    z, n, p = 1.959963984540054, 100, 0.85
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    cell = table.build(exp, "cpu", tmp_path).rows()[0]["acc (ours)"]
    assert cell == f"85.0 (95% CI {100 * (centre - half):.1f}–{100 * (centre + half):.1f}, 100 items)"
    assert cell == "85.0 (95% CI 76.7–90.7, 100 items)"


def test_at_each_seed_every_arm_is_scored_on_the_same_problems_and_the_seeds_differ():
    """lora_vs_full's base (shipped) row and its fine-tuned rows get the same analysis seed within an experiment
    seed (like with like), and a different one at each experiment seed, so the random-init control and the
    evaluation sample vary over the seeds (seed 0: the analysis's default)."""
    from plm_app.experiments import part1, part2

    exp = part2.part2_2_lora_vs_full
    for seed, expected in ((0, None), (1, 1)):
        steps = [s for s in runner.plan(exp, "cpu", "/tmp/r") if s.kind == "analyze" and s.seed == seed]
        assert len(steps) == 3 and {s.options.get("seed") for s in steps} == {expected}
        assert len({json.dumps(s.options) for s in steps}) == 1
    sweep = [s for s in runner.plan(part2.part2_1_vprobes, "cpu", "/tmp/r") if s.kind == "analyze"]
    assert {s.options.get("seed") for s in sweep} == {None, 1, 2}  # all arms shipped: the seeds are probe seeds
    probes = [s for s in runner.plan(part1.part1_schemes, "cpu", "/tmp/r") if s.analysis and s.analysis.key == "nt_probe"]
    assert {(s.seed, s.options.get("seed")) for s in probes} == {(0, None), (1, 1)}  # a new control init at seed 1


def test_the_plan_is_seed_major_so_a_campaign_stopped_part_way_holds_complete_comparisons(tmp_path):
    from plm_app.experiments import part1

    trains = [(s.label, s.seed) for s in runner.plan(part1.part1_corrupted, "cpu", tmp_path) if s.kind == "train"]
    assert trains == [("clean", 0), ("corrupt 0.1", 0), ("clean", 1), ("corrupt 0.1", 1)]


def test_zero_over_seeds_reads_as_zero_not_scientific_notation():
    m = Metric("x", "a", lambda r: 0.0, percent=False, digits=2)
    assert table.Cell.fmt([0.0, 0.0], m) == "0.00 (0.00–0.00, n=2)"


def test_each_control_keeps_one_marker_in_every_panel_and_the_legend_names_it():
    """part1_schemes' NT-end panel has two controls (majority, random-init) and the all-positions panel one: the
    random-init marker must be the same in both, and the legend (on the first panel, which has no control) must
    still name both controls."""
    import matplotlib

    matplotlib.use("Agg")
    exp = experiments.get("part1_schemes")
    cells = {}
    for i, arm in enumerate(exp.arms):
        cells[arm.label] = {}
        for m in exp.metrics:
            controls = {"random-init": [0.6 + 0.01 * i]} if m.controls else {}
            if "majority" in m.controls:
                controls["majority"] = [0.4]
            cells[arm.label][m.label] = table.Cell(values=[0.9], controls=controls)
    t = table.Table(exp, "cpu", cells, tokens={}, seconds={}, seeds_done={})
    fig = t.plot()
    seen = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_label() in ("random-init", "majority"):
                seen.setdefault(line.get_label(), set()).add(line.get_marker())
    assert set(seen) == {"random-init", "majority"} and all(len(m) == 1 for m in seen.values())
    assert seen["random-init"] != seen["majority"]
    legend = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert {"ours", "paper", "random-init", "majority"} <= set(legend)


# ---- several processes on one campaign -------------------------------------------------------------------------

def _a_held_elsewhere(tmp_path):
    """Steps "train A, analyse A, train B", with A's run directory locked as another process would (a second open
    file on its lock file, so the kernel's ``flock`` conflicts): returns A's directory, the steps, the lock's fd."""
    import fcntl
    import os

    from plm_interp.training import lock

    a, b = tmp_path / "a-s0", tmp_path / "b-s0"
    ana = Analysis("robustness", "robustness")
    steps = [runner.Step("train", a, "A", 0, argv=["a"]), runner.Step("analyze", a, "A", 0, analysis=ana, needs=(a,)),
             runner.Step("train", b, "B", 0, argv=["b"])]
    a.mkdir()
    fd = os.open(a / lock.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b'{"pid": 4242, "host": "elsewhere"}\n')
    return a, steps, fd


def test_a_step_held_by_another_process_is_put_off_and_its_dependants_wait_for_it(tmp_path, monkeypatch):
    """Another process (a real flock on the run directory's lock file) trains run A: this process trains B first,
    waits for A without touching it, and analyses A only once A's final model is there."""
    import os

    a, steps, fd = _a_held_elsewhere(tmp_path)
    order = []

    def finish(d):
        (d / "final").mkdir(parents=True)
        (d / "final" / "config.json").write_text("{}")

    monkeypatch.setattr(runner, "_train", lambda argv: (order.append(f"train {argv[0]}"), finish(tmp_path / f"{argv[0]}-s0")))
    monkeypatch.setattr(runner, "_analyze", lambda step: (order.append("analyze a"), step.output.parent.mkdir(
        parents=True), step.output.write_text("{}")))
    messages = []

    def report(m):
        messages.append(m)
        if m.startswith("waiting for other processes"):  # the other process finishes A and lets go
            finish(a)
            os.close(fd)

    counts = runner.execute(steps, report=report, poll=0.01)
    assert order == ["train b", "analyze a"], order
    assert counts == {"run": 2, "skipped": 1, "left": 0}  # A's training: found done once its lock was free
    assert any("put off" in m and "4242" in m for m in messages), messages
    assert sum(m.startswith("waiting") for m in messages) == 1


def test_without_waiting_the_steps_held_elsewhere_are_left_to_their_holder(tmp_path, monkeypatch):
    import os

    _, steps, fd = _a_held_elsewhere(tmp_path)
    trained = []
    monkeypatch.setattr(runner, "_train", lambda argv: trained.append(argv[0]))
    try:
        counts = runner.execute(steps, report=lambda m: None, poll=60, wait=False)  # would sleep a minute if waiting
    finally:
        os.close(fd)
    assert trained == ["b"] and counts == {"run": 1, "skipped": 0, "left": 2}


def test_a_step_that_waits_on_a_run_nobody_is_running_is_an_error_not_a_hang(tmp_path):
    import signal

    def hung(*_):
        raise TimeoutError("execute kept waiting for a run that no process holds")

    ana = Analysis("robustness", "robustness")
    orphan = runner.Step("analyze", tmp_path / "x-s0", "X", 0, analysis=ana, needs=(tmp_path / "never-s0",))
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(RuntimeError, match="never-s0"):
            runner.execute([orphan], report=lambda m: None, poll=0.01)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_two_processes_share_one_campaign_and_no_step_runs_twice(tmp_path):
    """Two ``plm-interp experiment`` processes started together on one runs directory both succeed, and every
    training step and analysis is done once, by one of them."""
    import subprocess
    import sys

    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "plm_app.cli", "experiment", "part1_corrupted", "--scale", "tiny",
            "--runs-dir", str(runs), "--poll", "0.2"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    ran = sum(int(o[1].rsplit(" step(s) run", 1)[0].rsplit("] ", 1)[1]) for o in outs)
    steps = runner.plan(experiments.get("part1_corrupted"), "tiny", runs)
    assert ran == len(steps)  # between them, each step exactly once
    for d in {s.directory for s in steps}:
        logged = [json.loads(x) for x in (d / runner.LOG).read_text().splitlines()]
        assert len(logged) == len({(r["kind"], r["key"]) for r in logged})  # nothing logged twice
        losses = [json.loads(x)["step"] for x in (d / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
        assert losses == [1, 2]  # each run trained once


def test_the_plan_records_what_each_step_needs(tmp_path):
    from plm_app.experiments import part2

    steps = runner.plan(part2.part2_2_retry_pretrain, "cpu", tmp_path)
    by_dir = {(s.kind, s.directory.name): s.needs for s in steps}
    assert by_dir[("train", "igsm-tiny-4x128-clean-op1-s0")] == ()
    assert by_dir[("train", "igsm-tiny-4x128-clean-s0")] == (tmp_path / "igsm-tiny-4x128-clean-op1-s0",)
    assert by_dir[("analyze", "igsm-tiny-4x128-clean-s0")] == (tmp_path / "igsm-tiny-4x128-clean-s0",)
    shipped = [s for s in runner.plan(part2.part2_1_vprobes, "cpu", tmp_path)]
    assert all(s.needs == () for s in shipped)


def test_dry_run_names_the_process_holding_a_run_and_the_probe_leaves_its_lock_alone(tmp_path, capsys):
    import fcntl
    import os

    from plm_interp.training import lock

    runs = tmp_path / "runs"
    victim = runs / "cfg-demo-rot-corrupt_frac0.1-s0"
    victim.mkdir(parents=True)
    assert lock.holder(victim) is None  # no lock file
    (victim / lock.LOCK_NAME).write_text('{"pid": 1, "host": "gone"}\n')
    assert lock.holder(victim) is None and (victim / lock.LOCK_NAME).is_file()  # a dead holder's file: untouched
    fd = os.open(victim / lock.LOCK_NAME, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, b'{"pid": 4242, "host": "elsewhere"}\n' + b" " * 8, 0)
    try:
        assert lock.holder(victim)["pid"] == 4242
        assert cli("part1_corrupted", "--scale", "tiny", "--runs-dir", str(runs), "--dry-run") == 0
        held = [line for line in capsys.readouterr().out.splitlines() if "held by pid 4242 on elsewhere" in line]
        assert len(held) == 2 and all(str(victim) in line for line in held)  # its training and its analysis
        with pytest.raises(lock.RunDirLocked):  # the probe did not take or break the holder's lock
            lock.acquire(victim)
    finally:
        os.close(fd)


def test_the_campaign_script_runs_each_experiment_without_waiting_then_waiting_at_low_priority(tmp_path):
    """scripts/campaign.sh (one stream of a campaign): every experiment once with --no-wait, then once waiting, in
    the order given, at nice 19 with one torch thread and this checkout's code first on the path; the flags it passes
    are ones the real command accepts."""
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "plm-interp"
    fake.write_text('#!/usr/bin/env bash\necho "$(nice) $OMP_NUM_THREADS ${PYTHONPATH%%:*} $*" >> "$CALLS"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PLM_BIN": str(fake), "CALLS": str(calls), "PLM_RUNS_DIR": str(tmp_path / "r"),
           "PLM_SCALE": "tiny"}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run(["bash", str(repo / "scripts" / "campaign.sh"), "part1_corrupted", "part2_2_retry_weak"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    head = f"19 1 {repo} experiment"
    tail = f"--scale tiny --runs-dir {tmp_path / 'r'}"
    assert lines == [f"{head} part1_corrupted {tail} --no-wait", f"{head} part2_2_retry_weak {tail} --no-wait",
                     f"{head} part1_corrupted {tail}", f"{head} part2_2_retry_weak {tail}"]
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    assert parser.parse_args(lines[0].split()[3:]).no_wait
    fake.write_text("#!/usr/bin/env bash\nexit 3\n")  # a failing experiment stops the stream with its status
    failed = subprocess.run(["bash", str(repo / "scripts" / "campaign.sh"), "part1_corrupted"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 3
    usage = subprocess.run(["bash", str(repo / "scripts" / "campaign.sh")], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_arm_limits_the_work_to_that_arms_runs_and_an_unknown_arm_is_refused(tmp_path, capsys):
    from plm_app.experiments import part2

    exp = part2.part2_2_retry_weak
    only = runner.plan(exp, "cpu", tmp_path, ["weak p=0.5"])
    assert {s.label for s in only} == {"weak p=0.5"}
    assert [s.directory.name for s in only if s.kind == "train"] == ["igsm-tiny-4x128-weak-p0.5-op1-s0",
                                                                     "igsm-tiny-4x128-weak-p0.5-s0"]
    every = runner.plan(exp, "cpu", tmp_path)
    assert [s.describe() for s in every if s.label == "weak p=0.5"] == [s.describe() for s in only]
    with pytest.raises(ValueError, match="'weak p=0.3'.*clean, weak p=0.1, weak p=0.5"):
        cli(exp.name, "--arm", "weak p=0.3", "--runs-dir", str(tmp_path))
    assert not any(tmp_path.iterdir())  # refused before any work or write
    assert cli(exp.name, "--scale", "tiny", "--arm", "weak p=0.5", "--runs-dir", str(tmp_path)) == 0
    assert sorted(d.name for d in tmp_path.iterdir() if d.name != "_tables") == [
        "igsm-tiny-4x128-weak-p0.5-op1-s0", "igsm-tiny-4x128-weak-p0.5-s0"]
    rows = json.loads((tmp_path / "_tables" / exp.name / "table.json").read_text())["rows"]
    assert [r["seeds done"] for r in rows] == ["0/1", "0/1", "1/1"]  # the table still shows every arm
