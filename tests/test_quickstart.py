"""The README's main job, shrunk to seconds: it trains, analyses and writes a report with plots."""
import json

import pytest

from plm_interp.app.cli import main


def test_quickstart_writes_a_report(tmp_path, capsys):
    run = tmp_path / "qs"
    assert main(["quickstart", "--preset", "tiny", "--steps", "6", "--probe-steps", "3", "--n-eval", "4",
                 "--run-dir", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert str(run / "report.md") in out and "generation accuracy cut0 %" in out
    report = (run / "report.md").read_text()
    for name in ("generation", "nt_probe", "attention_boundary"):
        assert (run / name / "plot.png").stat().st_size > 1000 and f"![{name}]({name}/plot.png)" in report
    headline = json.loads((run / "headline.json").read_text())
    assert 0 <= headline["generation accuracy cut0 %"] <= 100
    assert (run / "model" / "model.safetensors").exists()


def test_quickstart_refuses_bad_options_before_writing(tmp_path, capsys):
    assert main(["quickstart", "--grammar", "nope", "--run-dir", str(tmp_path / "x")]) == 2
    assert main(["quickstart", "--n-ctx", "20", "--run-dir", str(tmp_path / "y")]) == 2
    assert "n-ctx" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
