"""Re-measure a shipped model's card figures by running their calls again, and save the results in the repository.

    python scripts/remeasure_card.py MODEL                      # every call whose figures say "not re-measured yet"
    python scripts/remeasure_card.py MODEL "analyses.v_probe(model, probe=\"nece\")"
    python scripts/remeasure_card.py cfg3b-abs "analyses.nt_probe(model, probes=['nt_end_diag', 'end_bit'])" \\
        --replaces "analyses.nt_probe(model, n_train=256, n_test=64, steps=600)"

Why: a card figure must come from the library's current default fit and name the call that gives it again. When
the fitting changes (issue 32's figure-based stopping), the old figures are marked stale; this runs each call on the
shipped weights, replaces exactly that call's figures (and those of ``--replaces``, a call the API no longer
accepts), and saves every result under ``results/cards/MODEL/`` so the card's numbers are backed by committed files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

#: the words a figure measured before the current fitting carries in its note (scripts/ship_models.py wrote them)
STALE = "not re-measured yet"


def stale_calls(card: dict) -> list[str]:
    """The distinct calls with at least one figure marked stale, in card order."""
    return list(dict.fromkeys(f["command"] for f in card["figures"] if STALE in f.get("note", "")))


def replace_figures(card: dict, call: str, figures: list[dict], replaces: tuple[str, ...] = ()) -> int:
    """Put ``figures`` on ``card`` in place of every figure of ``call`` and of the calls in ``replaces``; returns how
    many figures were removed. Other calls' figures (e.g. another probe of the same analysis) stay as they are."""
    gone = {call, *replaces}
    old = [f for f in card["figures"] if f["command"] in gone]
    card["figures"] = [f for f in card["figures"] if f["command"] not in gone] + figures
    return len(old)


def write_card(model: str, card: dict) -> None:
    """Check ``card`` and write it with its rendered MODEL_CARD.md, each file atomically (a crash leaves the old)."""
    from plm_interp.io import atomic_write_bytes
    from plm_interp.pretrained import model_dir
    from plm_interp.pretrained.card import check_card, render_markdown

    check_card(card, model)
    d = model_dir(model)
    atomic_write_bytes(d / "card.json", (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())
    atomic_write_bytes(d / "MODEL_CARD.md", render_markdown(card).encode())


def result_dir(model: str, call: str) -> Path:
    """Where a call's result is kept: one folder per call, named by the analysis and a short hash of the call."""
    name = call.split("(")[0].split(".")[-1]
    return ROOT / "results" / "cards" / model / f"{name}-{hashlib.sha1(call.encode()).hexdigest()[:8]}"


def main(argv: list[str] | None = None) -> int:
    import analyses
    from ship_models import headline_figures

    from plm_interp.pretrained import load_pretrained, model_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("calls", nargs="*", help="calls to run (default: every call with a stale figure)")
    p.add_argument("--replaces", action="append", default=[], help="an older call whose figures go too")
    a = p.parse_args(argv)
    d = model_dir(a.model)
    card = json.loads((d / "card.json").read_text())
    calls = a.calls or stale_calls(card)
    for call in calls:  # bad input is refused before any model is loaded or any file written
        if not call.startswith("analyses.") or not call.endswith(")"):
            raise SystemExit(f"call = {call!r}: must be an analyses.NAME(model, ...) call")
    if not calls:
        print(f"{a.model}: no stale figures")
        return 0
    model = load_pretrained(a.model)
    for call in calls:
        start = time.perf_counter()
        result = eval(call[:-1] + ", progress=False)", {"analyses": analyses, "model": model})
        seconds = time.perf_counter() - start
        figures = headline_figures(result, call)
        if not figures:
            raise SystemExit(f"{call}: the result has no headline figures")
        out = result_dir(a.model, call)
        result.save(out)
        (out / "call.json").write_text(json.dumps({"model": a.model, "call": call, "seconds": round(seconds, 1),
                                                   "date": time.strftime("%Y-%m-%d")}, indent=2) + "\n")
        removed = replace_figures(card, call, figures, tuple(a.replaces))
        write_card(a.model, card)  # after each call: a later crash loses none
        print(f"{a.model}: {call} ({seconds:.0f} s): {removed} figure(s) replaced by {len(figures)}; result in "
              f"{out.relative_to(ROOT)}")
        for f in figures:
            print(f"  {f['metric']}: {f['value']} ({f['note']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
