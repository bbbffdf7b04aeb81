"""nt_probe: finds structure that is linearly present by construction, reports controls, refuses bad input."""
import pytest
import torch

import analyses
from plm_interp import HookedPLM, preset_config
from tasks.cfg import CFGTask, parse_text

# Terminal parents P/Q have disjoint terminals {a, b} / {c, d}: the level-2 ancestor is a function of the
# token itself, hence linearly decodable from the embeddings (layer 0) of any model, random or trained.
SEPARABLE = parse_text("""S -> X Y | Y X
X -> P Q | Q P P
Y -> Q P | P Q Q
P -> a b | b a a
Q -> c d | d c c""", name="separable")


def _model(task, **kw):
    cfg = preset_config("tiny", d_vocab=task.d_vocab, n_ctx=64, positional="rot", seed=0, task=task.spec(), **kw)
    return HookedPLM(cfg)


def test_token_determined_level_is_decoded_and_an_undetermined_one_is_not():
    task = CFGTask(SEPARABLE)
    model = _model(task)
    r = analyses.nt_probe(model, layers=0, n_train=200, n_test=100, steps=100, width=8, n_heads=2,
                          lr=3e-2, progress=False)
    assert r.layers == [0] and r.levels == [1, 2]
    for model_name in ("trained", "random-init"):
        assert r.accuracy("nt_all", 2, model=model_name) > 0.97
        assert r.accuracy("nt_end_diag", 2, model=model_name) > 0.97
    majority = next(x["majority"] for x in r.records if x["probe"] == "nt_all" and x["level"] == 2)
    assert majority < 0.7
    # level 1 (X vs Y) is not a function of a single token: a diagonal probe on embeddings cannot read it
    assert r.accuracy("nt_end_diag", 1) < 0.9
    text = r.table()
    assert "| majority |" in text and "NT3" in text


def test_task_is_read_from_the_model_and_results_save(tmp_path):
    task = CFGTask(SEPARABLE)
    model = _model(task)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = HookedPLM.from_pretrained(tmp_path / "ckpt")
    r = analyses.run("nt_probe", loaded, layers=[1, 2], levels=[2], n_train=40, n_test=20, steps=3, width=4,
                     n_heads=2, controls=False, progress=False)
    assert r.layers == [1, 2] and {x["layer"] for x in r.records} == {1, 2}
    out = r.save(tmp_path / "out")
    assert {p.name for p in out.iterdir()} == {"result.json", "table.md", "plot.png"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(layers=5), "layer = 5"),
    (dict(levels=[7]), "level 7"),
    (dict(n_train=0), "empty"),
])
def test_bad_input_is_refused(kwargs, match):
    task = CFGTask(SEPARABLE)
    with pytest.raises(ValueError, match=match):
        analyses.nt_probe(_model(task), progress=False, steps=1, **kwargs)


def test_vocabulary_mismatch_and_missing_task_are_refused():
    big = CFGTask("demo")
    small = HookedPLM(preset_config("tiny", d_vocab=5, n_ctx=64, seed=0))
    with pytest.raises(ValueError, match="records no task"):
        analyses.nt_probe(small)
    with pytest.raises(ValueError, match="d_vocab = 5"):
        analyses.nt_probe(small, big)
    with pytest.raises(ValueError, match="no option"):
        analyses.run("nt_probe", small, big, n_heads_typo=3)
