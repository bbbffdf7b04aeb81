"""scripts/card_figures_from_result.py rebuilds a saved result as its class, so its headline figures are the ones
the call printed (not re-derived from the table)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from analyses.nt_probe import PROBE_KINDS, NTProbeResult

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("card_figures_from_result", ROOT / "scripts" / "card_figures_from_result.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_saved_nt_probe_result_loads_back_with_the_same_headlines(tmp_path):
    recs = [{"model": m, "layer": 2, "level": 1, "probe": p, "acc": a, "majority": 0.4, "n": 500, "converged": True,
             "iterations": 30} for m, a in (("trained", 0.9), ("random-init", 0.6)) for p in PROBE_KINDS]
    result = NTProbeResult(grammar="demo", layers=[2], levels=[1], records=recs, settings={"n_train": 8})
    result.save(tmp_path / "r")
    back = _script().load_result(tmp_path / "r")
    assert type(back) is NTProbeResult and back.records == recs and back.layers == [2]
    assert back.headlines() == result.headlines()
    assert [h["metric"] for h in back.headlines()] == ["NT2 NT-end ancestor", "NT2 ancestor, all positions"]


def _remeasure():
    spec = importlib.util.spec_from_file_location("remeasure_card", ROOT / "scripts" / "remeasure_card.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_remeasure_replaces_exactly_its_own_call_and_the_named_older_one():
    """Re-measuring one V-probe call must not drop another probe's figures of the same analysis (a prefix match
    would), and an older call the API no longer accepts goes when named."""
    nece, can = 'analyses.v_probe(model, probe="nece")', 'analyses.v_probe(model, probe="can_next")'
    old = "analyses.nt_probe(model, steps=600)"
    card = {"figures": [{"metric": "a", "command": nece, "note": "n=1"},
                        {"metric": "b", "command": can, "note": "x (before ...; not re-measured yet)"},
                        {"metric": "c", "command": old, "note": "not re-measured yet"}]}
    mod = _remeasure()
    assert mod.stale_calls(card) == [can, old]
    new = [{"metric": "b", "command": can, "note": "fresh"}]
    assert mod.replace_figures(card, can, new) == 1
    assert [f["command"] for f in card["figures"]] == [nece, old, can]
    assert mod.replace_figures(card, "analyses.nt_probe(model)", [], ("analyses.nt_probe(model, steps=600)",)) == 1
    assert [f["metric"] for f in card["figures"]] == ["a", "b"]
    assert mod.result_dir("m", can) != mod.result_dir("m", nece)


def test_remeasure_refuses_a_call_that_is_not_an_analysis_before_loading_anything(capsys):
    import pytest

    with pytest.raises(SystemExit, match="call = 'print"):
        _remeasure().main(["demo-rot", "print(1)"])
