"""The measured tables in the docs are generated from committed result summaries (results/**/*.json) by
scripts/docs_tables.py: a table edited by hand, or a summary changed without regenerating, fails here."""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "scripts" / "docs_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DT = _module()
SUMMARIES = DT.summaries()


def test_every_generated_docs_table_agrees_with_its_summary():
    assert len(SUMMARIES) >= 5
    assert DT.check() == [], "run: python scripts/docs_tables.py"


def test_a_changed_figure_is_caught():
    path, summary = SUMMARIES[0]
    doc = (ROOT / summary["table"]["doc"]).read_text()
    assert DT.block(path, summary) in doc
    changed = copy.deepcopy(summary)
    key = next(k for k, v in changed["rows"][0].items() if isinstance(v, float))
    changed["rows"][0][key] += 1.0
    assert DT.block(path, changed) not in doc


@pytest.mark.parametrize("path,summary", SUMMARIES, ids=lambda x: x.stem if isinstance(x, Path) else "")
def test_summaries_are_consistent_and_name_their_sources(path, summary):
    assert summary["measured"] and summary["source"] and summary["settings"]
    headers = [c["header"] for c in summary["table"]["columns"]]
    if any(h.startswith("paper") for h in headers):  # every paper figure stands beside its source
        assert "source" in headers
    for row in summary["rows"]:
        for fig, lo, hi in (("acc", "lo", "hi"), ("acc", "acc_min", "acc_max"), ("ood", "ood_lo", "ood_hi"),
                            ("reask", "reask_lo", "reask_hi"), ("nece", "nece_lo", "nece_hi")):
            if lo in row:
                assert row[lo] <= row[fig] <= row[hi], (path.name, row.get("arm"), fig)
