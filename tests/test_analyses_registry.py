"""The registry: the documented worked example works verbatim; bad registrations and options are refused."""
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import analyses
from plm_interp import HookedPLM, preset_config
from plm_app.cli import main
from tasks.cfg import CFGTask


ROOT = Path(__file__).parents[1]


def _model():
    task = CFGTask("demo")
    return HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=96, seed=0, task=task.spec()))


def documented_module() -> str:
    doc = Path(__file__).parents[1].joinpath("docs/analyses.md").read_text()
    return re.search(r"Write a module, e.g. `my_analyses.py`:\n\n```python\n(.*?)```", doc, re.S).group(1)


def test_the_documented_example_runs(tmp_path):
    code = documented_module() + "\nRESULT = analyses.run('head_norms_doc', model)\n"
    code = code.replace("@analyses.register(\"head_norms\")", "@analyses.register('head_norms_doc')")
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


def test_the_documented_module_runs_from_the_shell_with_import(tmp_path, monkeypatch, capsys):
    """docs/analyses.md's module, written to a user's directory, runs through `plm-interp analyze --import`."""
    (tmp_path / "my_analyses_cli.py").write_text(documented_module().replace('"head_norms"', '"head_norms_cli"'))
    _model().save_pretrained(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["analyze", "head_norms_cli", "--model", "m", "--set", "n=4"]) == 2  # unknown without --import
    assert "head_norms_cli" in capsys.readouterr().err
    assert main(["analyze", "head_norms_cli", "--import", "my_analyses_cli", "--model", "m", "--set", "n=4"]) == 0
    out = tmp_path / "runs" / "m" / "analyses" / "head_norms_cli" / "result.json"
    norms = json.loads(out.read_text())["norms"]
    assert len(norms) == 2 and len(norms[0]) == 2 and all(v > 0 for r in norms for v in r)


def test_import_takes_a_py_path(tmp_path, capsys):
    f = tmp_path / "by_path.py"
    f.write_text(documented_module().replace('"head_norms"', '"head_norms_path"'))
    assert main(["analyze", "--list", "--import", str(f)]) == 0
    assert "head_norms_path" in capsys.readouterr().out
    assert main(["analyze", "--list", "--import", "no_such_module_xyz"]) == 2
    assert "no_such_module_xyz" in capsys.readouterr().err


def test_an_entry_point_adds_an_analysis_in_a_fresh_process(tmp_path):
    """An installed distribution that declares the module in the group plm_interp.analyses is found with no flag."""
    (tmp_path / "ep_analyses.py").write_text(documented_module().replace('"head_norms"', '"head_norms_ep"'))
    dist = tmp_path / "ep_analyses-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-analyses\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[plm_interp.analyses]\nep_analyses = ep_analyses\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = subprocess.run([sys.executable, "-m", "plm_app.cli", "analyze", "--list"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "head_norms_ep" in out.stdout and "nt_probe" in out.stdout


def test_import_analyses_x_gives_the_module_and_calling_it_runs_the_analysis(monkeypatch):
    import analyses.reasoning_level as m

    assert isinstance(m, types.ModuleType) and m.__name__ == "analyses.reasoning_level"
    assert analyses.reasoning_level is m and m.ReasoningLevelResult  # module attributes reachable
    seen = {}
    monkeypatch.setattr(m, "reasoning_level", lambda model, task=None, **kw: seen.setdefault("call", (model, kw)))
    assert analyses.reasoning_level("MODEL", n=3) == ("MODEL", {"n": 3})  # calling the module runs its function


def test_a_new_builtin_module_is_discovered_without_a_list(tmp_path, monkeypatch):
    """registry.discover imports every module of the package: a new file registers with no other edit."""
    pkg = tmp_path / "pkg_discover"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "fresh_one.py").write_text("import analyses\n@analyses.register('fresh_one')\n"
                                      "def fresh_one(model, task=None):\n    return model\n")
    (pkg / "_private.py").write_text("raise RuntimeError('private modules are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pkg_discover

    assert analyses.registry.discover(pkg_discover)[0] == "pkg_discover.fresh_one"
    assert "fresh_one" in analyses.names() and pkg_discover.fresh_one("m") == "m"


def test_every_builtin_analysis_module_is_registered_under_its_own_name():
    root = Path(analyses.__file__).parent
    registered = set(analyses.names())
    for path in root.glob("*.py"):
        text = path.read_text()
        for name in re.findall(r'^@register\("(\w+)"\)', text, re.M):
            assert name in registered, f"{path.name} registers {name!r} but discovery missed it"


def test_every_analysis_runs_on_the_free_cores_and_restores_the_callers_threads(monkeypatch):
    """Two usable cores with one busy: a registered analysis runs one torch thread; a nested analysis keeps it."""
    import torch

    from analyses import registry
    from plm_interp import runtime

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("PLM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    monkeypatch.setattr(runtime, "load_average", lambda: 1.0)
    seen = []
    inner = registry.register("threads_inner_test")(lambda model, task=None: seen.append(torch.get_num_threads()))

    def outer(model, task=None):
        seen.append(torch.get_num_threads())
        monkeypatch.setattr(runtime, "load_average", lambda: 0.0)  # the nested call must not re-decide
        inner(model)

    outer = registry.register("threads_outer_test")(outer)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        analyses.run("threads_outer_test", None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
        registry._ANALYSES.pop("threads_inner_test")
        registry._ANALYSES.pop("threads_outer_test")
    assert seen == [1, 1]
