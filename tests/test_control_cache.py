"""The random-init control's records are fitted once per (weights, config, inputs, code) and read back after that."""
import json

import pytest
import torch

import analyses
import analyses.nt_probe as nt_module
from analyses.shared import control_cache as cc
from plm_interp import HookedPLM, preset_config
from tasks.cfg import CFGTask, parse_text


def _control(seed=1, positional="rot"):
    return HookedPLM(preset_config("tiny", d_vocab=11, n_ctx=16, positional=positional, seed=seed))


class Counter:
    def __init__(self, records):
        self.calls, self.records = 0, records

    def __call__(self):
        self.calls += 1
        return self.records


RECORDS = [{"model": "random-init", "acc": 0.75, "curve": (1, 2), "nan": float("nan")}]


def test_a_second_call_reads_the_records_back_without_fitting():
    fit = Counter(RECORDS)
    first, how1 = cc.cached_records("demo", _control(), {"x": torch.arange(5)}, fit)
    second, how2 = cc.cached_records("demo", _control(), {"x": torch.arange(5)}, fit)
    assert (how1, how2, fit.calls) == ("fitted", "cached", 1)
    # both paths return the same plain-JSON objects (the tuple became a list in both)
    assert json.dumps(first) == json.dumps(second) and first[0]["curve"] == [1, 2]


@pytest.mark.parametrize("change", ["weights", "config", "inputs", "analysis"])
def test_anything_the_records_depend_on_changes_the_key(change):
    base = ("demo", _control(), {"x": torch.arange(5)})
    changed = {
        "weights": ("demo", _control(seed=2), {"x": torch.arange(5)}),
        "config": ("demo", _with_cfg_change(), {"x": torch.arange(5)}),
        "inputs": ("demo", _control(), {"x": torch.arange(1, 6)}),
        "analysis": ("other", _control(), {"x": torch.arange(5)}),
    }[change]
    assert cc.control_key(*base) != cc.control_key(*changed)
    fit = Counter(RECORDS)
    cc.cached_records(*base, fit)
    assert cc.cached_records(*changed, fit)[1] == "fitted" and fit.calls == 2


def _with_cfg_change():
    """Equal weights, one config setting changed (the rotary base: no weight depends on it)."""
    a = _control()
    b = HookedPLM(a.cfg.replace(rotary_base=5000))
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    return b


def test_off_switch_and_unreadable_files_refit(monkeypatch):
    fit = Counter(RECORDS)
    args = ("demo", _control(), [1, 2])
    cc.cached_records(*args, fit)
    for path in cc.cache_dir().glob("demo-*.json"):
        path.write_text("{ truncated")
    assert cc.cached_records(*args, fit)[1] == "fitted" and fit.calls == 2
    assert cc.cached_records(*args, fit)[1] == "cached" and fit.calls == 2  # the refit rewrote the file whole
    monkeypatch.setenv("PLM_CONTROL_CACHE", "off")
    assert cc.cached_records(*args, fit)[1] == "fitted" and fit.calls == 3
    assert not list(cc.cache_dir().glob(".tmp-*"))


def test_a_file_under_the_name_with_another_key_is_not_trusted():
    fit = Counter(RECORDS)
    args = ("demo", _control(), [1, 2])
    cc.cached_records(*args, fit)
    (path,) = cc.cache_dir().glob("demo-*.json")
    path.write_text(json.dumps({"key": "0" * 64, "records": [{"acc": 1.0}]}))
    records, how = cc.cached_records(*args, fit)
    assert how == "fitted" and records[0]["acc"] == 0.75


SEPARABLE = parse_text("""S -> X Y | Y X
X -> P Q | Q P P
Y -> Q P | P Q Q
P -> a b | b a a
Q -> c d | d c c""", name="separable")


def test_nt_probe_fits_its_control_once_for_two_checkpoints_of_one_architecture(monkeypatch):
    """Two models of one architecture (a training curve's checkpoints): the second call's control records are the
    first's, read back, and its own trained records are fitted afresh."""
    task = CFGTask(SEPARABLE)
    cfg = preset_config("tiny", d_vocab=task.d_vocab, n_ctx=64, positional="rot", seed=0, task=task.spec())
    kw = dict(layers=0, levels=[2], n_train=60, n_test=40, fit=dict(width=8, n_heads=2, max_iter=30), progress=False)
    first = analyses.nt_probe(HookedPLM(cfg), **kw)
    calls = []
    real = nt_module._probe_layer
    monkeypatch.setattr(nt_module, "_probe_layer", lambda model, name, *a: calls.append(name) or real(model, name, *a))
    second = analyses.nt_probe(HookedPLM(cfg.replace(seed=5)), **kw)  # other trained weights, same architecture
    assert calls == ["trained"]
    assert (first.settings["control_fit"], second.settings["control_fit"]) == ("fitted", "cached")
    control = lambda r: [x for x in r.records if x["model"] == "random-init"]
    assert json.dumps(control(first)) == json.dumps(control(second)) and control(second)
    monkeypatch.setenv("PLM_CONTROL_CACHE", "off")
    analyses.nt_probe(HookedPLM(cfg), **kw)
    assert calls == ["trained", "trained", "random-init"]


def test_a_v_probe_control_read_back_from_json_keeps_its_per_label_figures():
    """JSON keeps dict keys as strings: the per-label headlines must find the control's label 0 and label 1 all the
    same (they showed an empty control before the labels were read back as ints)."""
    from analyses.v_probe import VProbeResult

    def rec(model, by):
        return {"model": model, "layer": 2, "acc": 0.8, "balanced_acc": sum(by.values()) / 2, "majority": 0.79,
                "majority_label": 0, "by_label": by, "n_by_label": {0: 789, 1: 211}, "n": 1000, "converged": True}

    fresh = [rec("trained", {0: 0.97, 1: 0.2}), rec("random-init", {0: 1.0, 1: 0.0})]
    plain = json.loads(json.dumps(fresh))
    assert list(plain[1]["by_label"]) == ["0", "1"]
    heads = lambda records: VProbeResult(probe="nece", layers=[2], records=records).headlines()
    assert heads(plain) == heads(fresh)
    by_metric = {h["metric"]: h for h in heads([fresh[0], plain[1]])}
    assert by_metric["nece acc on label 0"]["control"] == 1.0 and by_metric["nece acc on label 1"]["control"] == 0.0
    assert by_metric["nece acc on label 0"]["majority"] == 1.0 and by_metric["nece acc on label 1"]["majority"] == 0.0
