"""The registry: the documented worked example works verbatim; bad registrations and options are refused."""
import re
from pathlib import Path

import pytest

import analyses
from plm_interp import HookedPLM, preset_config
from plm_interp.app.cli import main
from tasks.cfg import CFGTask


def _model():
    task = CFGTask("demo")
    return HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=96, seed=0, task=task.spec()))


def test_the_documented_example_runs(tmp_path):
    doc = Path(__file__).parents[1].joinpath("docs/analyses.md").read_text()
    code = re.search(r"## Adding your own hooked analysis\n\n```python\n(.*?)```", doc, re.S).group(1)
    code = code.replace("analyses.run(\"head_norms\", model).table()", "RESULT = analyses.run('head_norms', model)")
    code = code.replace("@analyses.register(\"head_norms\")", "@analyses.register('head_norms_doc')")
    code = code.replace("'head_norms'", "'head_norms_doc'")
    scope = {"model": _model()}
    exec(code, scope)
    result = scope["RESULT"]
    assert len(result.rows()) == 2 * 2 and "head_norms_doc" in analyses.names()
    assert {p.name for p in result.save(tmp_path).iterdir()} == {"result.json", "table.md", "plot.png"}


def test_builtin_analyses_are_registered():
    assert {"generation", "nt_probe", "attention_boundary", "robustness", "v_probe", "reasoning_level",
            "mistakes", "regret_probe", "retry_upon_regret", "retry_eval"} <= set(analyses.names())


def test_bad_registrations_are_refused():
    with pytest.raises(TypeError, match="model, task"):
        analyses.register("bad_sig")(lambda x: x)
    with pytest.raises(ValueError, match="identifier"):
        analyses.register("not a name")
    with pytest.raises(ValueError, match="already registered"):
        analyses.register("nt_probe")(lambda model, task=None: None)


def test_cli_runs_an_analysis_and_refuses_unknown_options(tmp_path, capsys):
    _model().save_pretrained(tmp_path / "m")
    assert main(["analyze", "generation", "--model", str(tmp_path / "m"), "--set", "n=4", "--set", "kl_strings=2",
                 "--set", "progress=false", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "plot.png").exists() and "accuracy cut0" in capsys.readouterr().out
    assert main(["analyze", "generation", "--model", str(tmp_path / "nowhere"), "--set", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["analyze", "no_such_analysis", "--model", "x"]) == 2


def test_cli_takes_a_shipped_model_by_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output goes under runs/NAME/, never into the package
    assert main(["analyze", "value_lookup", "--model", "igsm-small", "--set", "n=4", "--set", "progress=false"]) == 0
    assert "selectivity" in capsys.readouterr().out
    assert (tmp_path / "runs" / "igsm-small" / "analyses" / "value_lookup" / "result.json").is_file()
    assert main(["analyze", "value_lookup", "--model", "no-such-model"]) == 2
    assert "shipped" in capsys.readouterr().err
