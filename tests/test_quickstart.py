"""The README's main job, shrunk to seconds: it trains, analyses (beside the shipped reference) and writes a report;
one run directory holds one run's arguments (issue 20, finding 2)."""
import json

from plm_app.cli import main

FAST = ["--preset", "tiny", "--steps", "6", "--probe-max-iter", "3", "--n-probe", "16", "--n-eval", "4",
        "--no-progress"]


def test_quickstart_writes_a_report_beside_the_shipped_reference(tmp_path, capsys):
    run = tmp_path / "qs"
    assert main(["quickstart", *FAST, "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert str(run / "report.md") in out and "generation accuracy cut0 %" in out
    assert "torch thread(s)" in out  # the thread choice is logged
    report = (run / "report.md").read_text()
    for name in ("generation", "nt_probe", "attention_boundary"):
        assert (run / name / "plot.png").stat().st_size > 1000 and f"({name}/plot.png)" in report
        assert (run / "reference" / "demo-rot" / name / "plot.png").stat().st_size > 1000
        assert f"(reference/demo-rot/{name}/plot.png)" in report
    headline = json.loads((run / "headline.json").read_text())
    assert set(headline) == {"this run", "shipped demo-rot"}
    # the shipped model generates the grammar (its card: 94.5% cut0); the 6-step tiny model does not
    assert headline["shipped demo-rot"]["generation accuracy cut0 %"] >= 50
    assert "**Reference:**" in report and "| | this run | shipped demo-rot |" in report
    assert "trained / random-init / majority" in report
    assert (run / "model" / "model.safetensors").exists()


def test_quickstart_refuses_bad_options_before_writing(tmp_path, capsys):
    assert main(["quickstart", "--grammar", "nope", "--run-dir", str(tmp_path / "x")]) == 2
    assert main(["quickstart", "--n-ctx", "20", "--run-dir", str(tmp_path / "y")]) == 2
    assert "n-ctx" in capsys.readouterr().err
    assert main(["quickstart", "--reference", "nope", "--run-dir", str(tmp_path / "z")]) == 2
    assert "--reference 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_issue20_2_rerun_with_other_steps_or_lr_is_refused_unless_resumed_with_the_same_arguments(tmp_path, capsys):
    run = tmp_path / "qs"
    base = ["quickstart", *FAST, "--reference", "none", "--run-dir", str(run)]
    assert main(base) == 0
    metrics = (run / "train" / "metrics.jsonl").read_bytes()
    report = (run / "report.md").read_bytes()
    capsys.readouterr()
    # before the fix these silently resumed the old run while the report printed the new arguments
    assert main([*base, "--steps", "9"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*base, "--steps", "9", "--resume"]) == 2
    assert "--steps 6 there, 9 now" in capsys.readouterr().err
    assert main([*base, "--lr", "0.01", "--resume"]) == 2
    assert "--lr 0.002 there, 0.01 now" in capsys.readouterr().err
    assert (run / "train" / "metrics.jsonl").read_bytes() == metrics and (run / "report.md").read_bytes() == report
    # the same arguments with --resume continue it; other arguments go to a new directory
    assert main([*base, "--resume"]) == 0
    other = tmp_path / "other"
    assert main(["quickstart", *FAST, "--reference", "none", "--steps", "9", "--run-dir", str(other)]) == 0
    assert json.loads((other / "quickstart.json").read_text())["steps"] == 9


def test_issue20_2_a_directory_that_is_not_a_quickstart_run_is_refused(tmp_path, capsys):
    run = tmp_path / "busy"
    run.mkdir()
    (run / "notes.txt").write_text("someone else's")
    assert main(["quickstart", *FAST, "--reference", "none", "--run-dir", str(run), "--resume"]) == 2
    assert "not a quickstart run directory" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
