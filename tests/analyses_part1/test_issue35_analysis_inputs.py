"""Issue 35: analysis options that would give a figure nobody asked for are refused by name, before any work."""
import pytest

import analyses
from plm_interp import HookedPLM, PLMConfig, preset_config
from plm_interp.config import ConfigError
from tasks.cfg import CFGTask


def _model():
    task = CFGTask("demo")
    return HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=64, seed=0, task=task.spec())), task


@pytest.mark.parametrize("cut, words", [(-5, "must be a positive int"), (0, "must be a positive int"),
                                        (True, "must be a positive int"), (10**6, "longer than 1000000")])
def test_bad_analysis_input_generation_cut(monkeypatch, cut, words):
    """cut=-5 reported "cut-5 = 100%"; a cut past every string dropped the cut figure; both exit 0 before."""
    import analyses.generation as gen
    model, task = _model()
    monkeypatch.setattr(gen, "_generate", lambda *a, **k: pytest.fail("generated before checking 'cut'"))
    with pytest.raises(ValueError, match="'cut'") as err:
        analyses.generation(model, task, n=4, cut=cut, kl_strings=2, progress=False)
    assert words in str(err.value)


def test_bad_analysis_input_generation_cut_cli(tmp_path, capsys):
    from plm_app.cli import main
    model, _ = _model()
    model.save_pretrained(tmp_path / "m")
    assert main(["analyze", "generation", "--model", str(tmp_path / "m"), "--set", "n=4", "--set", "kl_strings=2",
                 "--set", "cut=-5", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "'cut' = -5" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "result.json").exists()


@pytest.mark.parametrize("field", ["d_mlp", "d_head", "d_vocab_out"])
def test_bad_analysis_input_bools_are_not_sizes(field):
    """``d_mlp=True`` built a model with a 1-wide MLP."""
    with pytest.raises(ConfigError, match=f"'{field}'"):
        PLMConfig(d_model=16, n_layers=1, n_heads=2, d_vocab=8, n_ctx=8, **{field: True})


def test_bad_analysis_input_layers_true_is_refused_by_the_registry():
    model, task = _model()
    with pytest.raises(ValueError, match="layers = True"):
        analyses.run("nt_probe", model, task, layers=True)


def test_bad_analysis_input_empty_sets_are_refused():
    from analyses.shared.igsm_inputs import eval_problems

    class NoTask:
        def eval_sets(self, *a, **k):
            pytest.fail("built the sets before checking 'sets'")
    with pytest.raises(ValueError, match="'sets' = \\[\\]: must name at least one"):
        eval_problems(NoTask(), 4, [], 0)
