"""nt_probe: finds structure that is linearly present by construction, reports controls and convergence, uses
one probe definition on every device, refuses bad input."""
from pathlib import Path

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
    r = analyses.nt_probe(model, layers=0, n_train=200, n_test=100, fit=dict(width=8, n_heads=2), progress=False)
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
    # a trained figure no better than the random-init one is called out in words, and only such a figure
    weak = {(t["probe"], t["level"]) for t, _ in r.below_control()}
    by = {(x["model"], x["probe"], x["level"]): x["acc"] for x in r.records}
    assert weak == {(p, l) for (m, p, l), a in by.items() if m == "trained" and not a > by[("random-init", p, l)]}
    assert ("not above the random-init control" in text) == bool(weak)
    r.records = [dict(x, acc=0.5) if x["model"] == "trained" and x["probe"] == "nt_all" and x["level"] == 2 else x
                 for x in r.records]
    edited = r.table()
    assert "not above the random-init control (" in edited and "nt_all NT3 layer 0: 50.0 vs " in edited


def test_each_record_states_its_training_set_accuracy_so_a_data_limited_figure_shows():
    """Eight training strings: the full probe fits them (train accuracy ~1) yet generalises worse; train_acc must be
    measured on the training strings (on the test strings it would equal acc)."""
    task = CFGTask(SEPARABLE)
    r = analyses.nt_probe(_model(task), layers=0, levels=[1], n_train=8, n_test=200, fit=dict(width=8, n_heads=2),
                          controls=False, progress=False)
    full = next(x for x in r.records if x["probe"] == "nt_all")
    assert full["train_acc"] > full["acc"] + 0.05
    assert any(row["model"] == "trained, train set" for row in r.rows())
    assert full in r.data_limited()
    assert "data-limited (" in r.table() and "fit their 8 training strings" in r.table()
    # a token-determined level with enough strings generalises: no such note
    plenty = analyses.nt_probe(_model(task), layers=0, levels=[2], n_train=200, n_test=100, fit=dict(width=8, n_heads=2),
                               controls=False, progress=False)
    assert not plenty.data_limited() and "data-limited" not in plenty.table()


def test_task_is_read_from_the_model_and_results_save(tmp_path):
    task = CFGTask(SEPARABLE)
    model = _model(task)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = HookedPLM.from_pretrained(tmp_path / "ckpt")
    r = analyses.run("nt_probe", loaded, layers=[1, 2], levels=[2], n_train=40, n_test=20, fit=dict(max_iter=3, width=4,
                     n_heads=2), controls=False, progress=False)
    assert r.layers == [1, 2] and {x["layer"] for x in r.records} == {1, 2}
    out = r.save(tmp_path / "out")
    assert {p.name for p in out.iterdir()} == {"result.json", "table.md", "plot.png"}


@pytest.mark.bad_input
@pytest.mark.parametrize("kwargs, match", [
    (dict(layers=5), "layer = 5"),
    (dict(levels=[7]), "level 7"),
    (dict(n_train=0), "empty"),
    (dict(levels=[]), "non-empty list"),
    (dict(layers=True), "layers = True"),
    (dict(fit=dict(width=0)), "'width' = 0"),
    (dict(fit=dict(n_heads=2.5)), "'n_heads' = 2.5"),
    (dict(fit=dict(stop="budget")), "'stop' = 'budget'"),
    (dict(fit=dict(widht=8)), "unknown key"),
])
def test_bad_input_is_refused(kwargs, match):
    task = CFGTask(SEPARABLE)
    with pytest.raises(ValueError, match=match):
        analyses.nt_probe(_model(task), progress=False, **kwargs)


def test_vocabulary_mismatch_and_missing_task_are_refused():
    big = CFGTask("demo")
    small = HookedPLM(preset_config("tiny", d_vocab=5, n_ctx=64, seed=0))
    with pytest.raises(ValueError, match="records no task"):
        analyses.nt_probe(small)
    with pytest.raises(ValueError, match="d_vocab = 5"):
        analyses.nt_probe(small, big)
    with pytest.raises(ValueError, match="no option"):
        analyses.run("nt_probe", small, big, n_heads_typo=3)


def test_the_result_says_whether_every_fit_converged_and_how_it_stopped():
    model = _model(CFGTask(SEPARABLE))
    full = analyses.nt_probe(model, layers=0, levels=[2], n_train=60, n_test=20, fit=dict(width=8, n_heads=2),
                             progress=False)
    assert full.settings["converged"] and full.settings["stop"] == "figure"
    for r in full.records:  # the figure rule: a validation curve, the kept (best) point on it, and why it stopped
        assert r["converged"] and r["iterations"] >= 1
        assert r["stop_reason"].startswith(("validation accuracy", "training loss at its optimum"))
        assert r["val_acc"] == pytest.approx(max(v for _, v in r["val_curve"]), abs=1e-6)
    short = analyses.nt_probe(model, layers=0, levels=[2], n_train=60, n_test=20,
                              fit=dict(width=8, n_heads=2, max_iter=1), progress=False)
    assert short.settings["max_iter"] == 1
    assert not short.settings["converged"] and not any(r["converged"] for r in short.records)
    # the table says so in words, naming the budget; a converged result carries no such line
    assert short.budget_limited() == short.records
    assert f"budget-limited (end_bit NT3, nt_all NT3, nt_end_diag NT3, nt_end_tri NT3): {len(short.records)} of " \
           f"{len(short.records)} fits reached max_iter = 1" in short.table()
    assert not full.budget_limited() and "budget-limited" not in full.table()
    loss = analyses.nt_probe(model, layers=0, levels=[2], n_train=60, n_test=20,
                             fit=dict(width=8, n_heads=2, stop="loss"), progress=False)
    assert loss.settings["stop"] == "loss" and all(r["stop_reason"] == "loss rule" for r in loss.records)


def test_headlines_give_each_level_beside_control_majority_and_verdict():
    task = CFGTask(SEPARABLE)
    r = analyses.nt_probe(_model(task), layers=0, n_train=120, n_test=60, fit=dict(width=8, n_heads=2),
                          progress=False)
    heads = {h["metric"]: h for h in r.headlines()}
    assert set(heads) == {f"NT{l + 1} {w}" for l in (1, 2) for w in ("NT-end ancestor", "ancestor, all positions")}
    h = heads["NT3 ancestor, all positions"]
    assert h["value"] == r.accuracy("nt_all", 2) and h["control"] == r.accuracy("nt_all", 2, model="random-init")
    assert h["majority"] == r.record(model="trained", layer=0, level=2, probe="nt_all")["majority"]
    assert h["lo"] <= h["value"] <= h["hi"] and h["verdict"]
    assert r.table().startswith("| figure |")


def _device_free_settings(r):
    return {k: v for k, v in r.settings.items() if k != "torch_threads"}


def test_probe_family_and_stopping_rule_do_not_depend_on_the_device(monkeypatch):
    """The paper's family (16 heads, width 1024) and one stopping rule, whatever the device reports."""
    from analyses.nt_probe import PROBE
    from plm_interp.probes import RIDGE, MultiHeadFit

    assert PROBE == {"n_heads": 16, "width": 1024}
    spec = MultiHeadFit()
    assert (spec.n_heads, spec.width, spec.ridge, spec.stop) == (16, 1024, RIDGE, "figure")
    model = _model(CFGTask(SEPARABLE))
    kw = dict(layers=0, levels=[2], n_train=40, n_test=20, controls=False, progress=False)
    here = analyses.nt_probe(model, **kw)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    claimed = analyses.nt_probe(model, **kw)
    assert _device_free_settings(here) == _device_free_settings(claimed)
    assert here.settings["n_heads"] == 16 and here.settings["width"] == 1024 and here.settings["stop"] == "figure"
    assert [r["acc"] for r in here.records] == [r["acc"] for r in claimed.records]
    # and nothing in the probe code can branch on the device kind (tensors are only placed beside their inputs)
    root = Path(__file__).resolve().parents[2]
    for path in [root / "analyses" / "nt_probe.py", *sorted((root / "plm_interp" / "probes").glob("*.py"))]:
        text = path.read_text()
        assert "cuda" not in text and "device.type" not in text and "get_device" not in text, path


@pytest.mark.gpu
def test_the_same_call_gives_the_same_measure_on_cpu_and_gpu():
    task = CFGTask(SEPARABLE)
    kw = dict(layers=[0, 2], n_train=200, n_test=100, progress=False)
    cpu = analyses.nt_probe(_model(task), **kw)
    gpu = analyses.nt_probe(_model(task).to("cuda"), **kw)
    assert _device_free_settings(cpu) == _device_free_settings(gpu)
    for a, b in zip(cpu.records, gpu.records):
        assert (a["model"], a["layer"], a["level"], a["probe"]) == (b["model"], b["layer"], b["level"], b["probe"])
        assert a["converged"] and b["converged"] and abs(a["acc"] - b["acc"]) < 0.02


def test_probes_fits_only_the_named_kinds_and_the_result_shows_those():
    """probes=["nt_end_diag", "end_bit"]: only those kinds are fitted (for both models), with the same figures as in
    the call that fits every kind (each fit is independent), and the headlines, table and plot show just them."""
    task = CFGTask(SEPARABLE)
    model = _model(task)
    kw = dict(layers=0, levels=[2], n_train=60, n_test=20, fit=dict(width=8, n_heads=2), progress=False)
    some = analyses.nt_probe(model, probes=["end_bit", "nt_end_diag"], **kw)
    every = analyses.nt_probe(model, **kw)
    assert {(r["model"], r["probe"]) for r in some.records} == {
        (m, p) for m in ("trained", "random-init") for p in ("nt_end_diag", "end_bit")}
    assert some.kinds() == ["nt_end_diag", "end_bit"] and some.settings["probes"] == ["nt_end_diag", "end_bit"]
    for r in some.records:
        assert r["acc"] == every.record(model=r["model"], layer=0, level=2, probe=r["probe"])["acc"]
    assert [h["metric"] for h in some.headlines()] == ["NT3 NT-end ancestor"]
    assert "nt_all" not in some.table()
    fig = some.plot()
    assert [ax.get_title() for ax in fig.axes] == ["nt_end_diag", "end_bit"]
    for bad in (["nt_everything"], [], "end_bit", ["end_bit", "end_bit"]):
        with pytest.raises(ValueError, match="probes = "):
            analyses.nt_probe(model, probes=bad, **kw)
