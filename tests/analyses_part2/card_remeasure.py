"""Slow-tier helper: re-measure every card figure of the issue-16 analyses (v_probe, regret_probe,
retry_upon_regret, attention_boundary, generation) with the card's own command, and check figure and margin."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import analyses
from plm_interp.pretrained import card, load_pretrained

ROOT = Path(__file__).resolve().parents[2]


def _ship():
    spec = importlib.util.spec_from_file_location("ship_models", ROOT / "scripts" / "ship_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def card_commands(name: str) -> list[str]:
    """The distinct commands of the card's re-measurable headline figures (those carrying a verdict)."""
    ship = _ship()
    return list(dict.fromkeys(f["command"] for f in card(name)["figures"]
                              if ship._own(f) and "verdict" in f))


def check_command(name: str, command: str, model=None) -> None:
    """Run ``command`` on the shipped model; every card figure it produced must come back within 0.5 points
    (0.001 for raw B values), and every "beats ..." / "exceeds ..." claim of the card's verdict must hold again."""
    ship = _ship()
    model = model or load_pretrained(name)
    recorded = {f["metric"]: f for f in card(name)["figures"] if f["command"] == command}
    result = eval(command[:-1] + ", progress=False)", {"analyses": analyses, "model": model})
    new = {f["metric"]: f for f in ship.headline_figures(result, command)}
    assert set(recorded) <= set(new) | {"KL(truth || model) nats/pos"}, set(recorded) - set(new)
    for metric, old in recorded.items():
        if metric not in new:
            continue
        tol = 0.5 if metric.endswith("%") else 1e-3
        assert new[metric]["value"] == pytest.approx(old["value"], abs=tol), metric
        claims = re.findall(r"(?<!NOT )(beats the [\w\- ]+|beats greedy|exceeds every other kind[\w ]+)",
                            old.get("verdict", ""))
        for claim in claims:  # the margin the card claims, re-asserted on the re-measured interval
            assert claim in new[metric]["verdict"], (metric, claim, new[metric]["verdict"])
