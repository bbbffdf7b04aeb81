"""Put one saved analysis result's headline figures on a shipped model's card, replacing that analysis's figures.

    python scripts/card_figures_from_result.py MODEL RESULT_DIR "analyses.nt_probe(model)"

Why: a default call that takes many minutes (nt_probe on cfg3b) is run once by ``bench/analyses.py`` (which saves its
result); this turns that saved result into the card's figures, with the exact call that reproduces them, instead of
running it a second time. Other analyses' figures on the card are left as they are.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def load_result(directory: Path):
    """The analysis result saved in ``directory/result.json``, rebuilt as its class (the analysis module is named in
    the call, the class in the record's ``analysis`` field)."""
    record = json.loads((directory / "result.json").read_text())
    name = record.pop("analysis")
    for module in sorted(p for p in (ROOT / "analyses").glob("*.py") if not p.name.startswith("_")):
        mod = importlib.import_module(f"analyses.{module.stem}")
        cls = getattr(mod, name, None)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            fields = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in record.items() if k in fields})
    raise ValueError(f"{directory}: no analysis result class named {name!r}")


def main(argv: list[str] | None = None) -> int:
    from remeasure_card import replace_figures, write_card
    from ship_models import headline_figures

    from plm_interp.pretrained import model_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("result_dir", type=Path)
    p.add_argument("call", help='the exact call that produced the result, e.g. "analyses.nt_probe(model)"')
    a = p.parse_args(argv)
    figures = headline_figures(load_result(a.result_dir), a.call)
    if not figures:
        raise SystemExit(f"{a.result_dir}: the result has no headline figures")
    d = model_dir(a.model)
    card = json.loads((d / "card.json").read_text())
    prefix = a.call.split("(")[0] + "("
    older = tuple({f["command"] for f in card["figures"] if f["command"].startswith(prefix)})
    removed = replace_figures(card, a.call, figures, older)
    write_card(a.model, card)
    print(f"{a.model}: {removed} figure(s) of {prefix}...) replaced by {len(figures)}")
    for f in figures:
        print(f"  {f['metric']}: {f['value']} ({f['note']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
