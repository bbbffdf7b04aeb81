"""Evaluate a finished training run and ship its model into the package with a model card (maintainer tool).

    python scripts/ship_models.py RUN_DIR NAME --command "plm-interp train ..." --wall-time-s 2400 [--figures-dir D]

The card's figures are measured here, on the final weights, by the same analyses a user would call; each figure
records the call that produced it. The analyses' tables and plots are saved under ``--figures-dir`` (default
``docs/figures/NAME``) for the docs pages. CFG models: ``generation``, ``nt_probe`` (with its random-init
control) and ``attention_boundary``; iGSM models: ``reasoning_level`` and the ``can_next`` / ``nece`` V-probes.
"""
from __future__ import annotations

import argparse
import json
import os
import math
import tempfile
import time
from pathlib import Path

import torch

import analyses
from plm_interp.checkpoint import load_model, save_model
from plm_interp.pretrained import ship_model

ROOT = Path(__file__).resolve().parents[1]
#: the paper's figures these measurements stand beside (PAPERS.md), per grammar
PAPER_CUT0 = {("cfg3b", "rot"): 99.8, ("cfg3b", "abs"): 99.8, ("cfg3f", "rot"): 97.6, ("cfg3f", "abs"): 57.1}


def cfg_figures(model, out: Path, probe_n: tuple[int, int] = (1024, 256), attention_n: int = 128,
                probes: bool = True) -> list[dict]:
    spec = model.cfg.task
    grammar, scheme = spec.get("grammar"), model.cfg.positional
    cut = 50 if grammar != "demo" else 20
    figs = []
    saved = out / "generation" / "result.json"
    if saved.is_file():  # an interrupted evaluation's generation result (the slowest part on long strings)
        d = json.loads(saved.read_text())
        gen = argparse.Namespace(accuracy=d["accuracy"], kl=d["kl"])
    else:
        gen = analyses.generation(model, n=256, cut=cut, progress=False)
        gen.save(out / "generation")
    call = f"analyses.generation(model, n=256, cut={cut})"
    figs.append({"metric": "generation accuracy cut0 %", "value": round(100 * gen.accuracy["cut0"], 1),
                 "paper_value": PAPER_CUT0.get((grammar, scheme)), "command": call})
    figs.append({"metric": f"generation accuracy cut{cut} %", "value": round(100 * gen.accuracy[f"cut{cut}"], 1),
                 "command": call})
    figs.append({"metric": "KL(truth || model) nats/pos", "value": float(f"{gen.kl:.3g}"),
                 "paper_value": {"rot": 0.0006, "abs": 0.00455}.get(scheme), "command": call,
                 "note": "paper value: cfg3f"})
    if not probes:
        return figs
    probe = analyses.nt_probe(model, n_train=probe_n[0], n_test=probe_n[1], progress=False)
    probe.save(out / "nt_probe")
    call = f"analyses.nt_probe(model, n_train={probe_n[0]}, n_test={probe_n[1]})"
    for lvl in probe.levels:
        figs.append({"metric": f"NT{lvl + 1} ancestor at NT-ends (diag probe) %, trained",
                     "value": round(100 * probe.accuracy("nt_end_diag", lvl), 1), "command": call,
                     "note": f"random-init control {100 * probe.accuracy('nt_end_diag', lvl, model='random-init'):.1f}"})
    deepest = probe.levels[-1]
    figs.append({"metric": f"NT-end bit b (NT{deepest + 1}) %", "value": round(100 * probe.accuracy("end_bit", deepest), 1),
                 "command": call})
    att = analyses.attention_boundary(model, n=attention_n, progress=False)
    att.save(out / "attention_boundary")
    figs.append({"metric": "best head's mean B, NT-end -> NT-end (deepest level)",
                 "value": round(att.b_mean("end->end").max().item(), 4),
                 "command": f"analyses.attention_boundary(model, n={attention_n})",
                 "note": f"other -> other: {att.b_mean('other->other').max().item():.4f}"})
    return figs


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}%"


def igsm_figures(model, out: Path) -> list[dict]:
    figs = []
    lvl = analyses.reasoning_level(model, n=128, sets=("in", "reask"), progress=False)
    lvl.save(out / "reasoning_level")
    call = "analyses.reasoning_level(model, n=128)"
    figs.append({"metric": "accuracy, in-distribution (op <= op_max) %", "value": round(100 * lvl.accuracy("in"), 1),
                 "paper_value": 99.9, "command": call, "note": "paper: med, op <= 15"})
    for op in sorted({r["op"] for r in lvl.records if r["set"] == "in" and r["op"] != "all"}):
        figs.append({"metric": f"accuracy op={op} %", "value": round(100 * lvl.accuracy("in", op), 1), "command": call})
    figs.append({"metric": "accuracy, reask %", "value": round(100 * lvl.accuracy("reask"), 1), "command": call})
    if model.cfg.task.get("retry"):  # trained on retry data: how often it retracts (Part 2.2)
        ret = analyses.retry_eval(model, n=128, sets=("in",), progress=False)
        ret.save(out / "retry_eval")
        figs.append({"metric": "retracted sentences per problem, in-distribution", "value": round(ret.retries("in"), 2),
                     "command": 'analyses.retry_eval(model, n=128, sets=("in",))'})
    for name in ("can_next", "nece"):
        r = analyses.v_probe(model, probe=name, progress=False)  # 512 / 128 problems: the margin is a few points
        r.save(out / f"v_probe_{name}")
        figs.append({"metric": f"V-probe {name} %, trained", "value": round(100 * r.accuracy(), 1),
                     "paper_value": 99.0, "command": f'analyses.v_probe(model, probe="{name}")',
                     "note": f"random-init {100 * r.accuracy(model='random-init'):.1f}, "
                             f"majority {100 * r.record()['majority']:.1f}"})
        figs.append({"metric": f"V-probe {name} %, random-init", "value": round(100 * r.accuracy(model="random-init"), 1),
                     "command": figs[-1]["command"]})
    reg = analyses.regret_probe(model, n_train=256, n_test=64, n_gen=64, progress=False)
    reg.save(out / "regret_probe")
    rec = reg.record()
    figs.append({"metric": "regret probe (can A be computed after 'Define A as') held-out %",
                 "value": round(100 * rec["acc"], 1), "paper_value": 99.0,
                 "command": "analyses.regret_probe(model, n_train=256, n_test=64, n_gen=64)",
                 "note": f"caught {_pct(rec['detect'])} of {rec['n_mistakes']} real first mistakes (paper ~60%)"})
    figs.append({"metric": "regret probe held-out %, random-init", "value": round(100 * reg.record(model="random-init")["acc"], 1),
                 "command": figs[-1]["command"]})
    look = analyses.value_lookup(model, n=128, progress=False)
    look.save(out / "value_lookup")
    call = "analyses.value_lookup(model, n=128)"
    figs.append({"metric": "value right at '=' (teacher-forced, op=1) %", "value": round(100 * look.value_acc, 1),
                 "command": call, "note": f"chance {100 * look.chance:.1f}"})
    figs.append({"metric": "best head's lookup selectivity", "value": round(float(look.selectivity().max()), 3),
                 "command": call, "note": f"chance {look.chance:.3f}"})
    retry = analyses.retry_upon_regret(model, n=64, sets=("in",), beam=4, progress=False)
    retry.save(out / "retry_upon_regret")
    for r in retry.records:
        if r["op"] == "all":
            figs.append({"metric": f"accuracy in-distribution, {r['method']} %", "value": round(100 * r["acc"], 1),
                         "command": 'analyses.retry_upon_regret(model, n=64, sets=("in",), beam=4)'})
    return figs


def _last_metrics(run_dir: Path, step: int | None = None) -> dict:
    """The last logged training record of a run (steps and tokens seen, loss), or the one at ``step``."""
    lines = (run_dir / "metrics.jsonl").read_text().strip().splitlines()
    return next(d for d in map(json.loads, reversed(lines)) if "loss" in d and step in (None, d["step"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("name")
    p.add_argument("--command", required=True, help="the exact training command")
    p.add_argument("--wall-time-s", type=float, required=True)
    p.add_argument("--machine", default="2-core CPU (shared with other jobs), one thread")
    p.add_argument("--summary", default="")
    p.add_argument("--task-preset", help="rewrite the recorded iGSM task preset (same generator config)")
    p.add_argument("--figures-dir", type=Path)
    p.add_argument("--probe-strings", type=int, nargs=2, default=(1024, 256), metavar=("TRAIN", "TEST"),
                   help="nt_probe strings (fewer for long-string grammars such as cfg3b on CPU)")
    p.add_argument("--attention-strings", type=int, default=128)
    p.add_argument("--generation-only", action="store_true", help="CFG: skip nt_probe and attention_boundary")
    p.add_argument("--earlier-runs", nargs="*", default=(), metavar="RUN_DIR[:STEP]",
                   help="earlier stages of a curriculum (their steps and tokens are added to the card's); :STEP "
                        "names the checkpoint the next stage started from")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = args.figures_dir or ROOT / "docs" / "figures" / args.name
    model = load_model(args.run_dir / "final", device="cpu").eval()
    src = args.run_dir
    if args.task_preset:  # the recorded spec names another preset but carries the full generator config
        model.cfg.task = {**model.cfg.task, "preset": args.task_preset}
        tmp = Path(tempfile.mkdtemp()) / "final"
        save_model(model, tmp)
        src = tmp
    t = time.time()
    figs = cfg_figures(model, out, tuple(args.probe_strings), args.attention_strings,
                                not args.generation_only) if model.cfg.task["kind"] == "cfg" else igsm_figures(model, out)
    print(f"evaluated in {time.time() - t:.0f} s")
    run_cfg = json.loads((args.run_dir / "config.json").read_text())
    last = _last_metrics(args.run_dir)
    stages = [(Path(a.rsplit(":", 1)[0]), int(a.rsplit(":", 1)[1])) if a.rsplit(":", 1)[-1].isdigit() else (Path(a), None)
              for a in args.earlier_runs]
    earlier = [_last_metrics(d, step) for d, step in stages]
    training = {"command": args.command, "wall_time_s": args.wall_time_s, "machine": args.machine,
                "seed": run_cfg["train"]["seed"], "steps": last["step"] + sum(e["step"] for e in earlier),
                "tokens_seen": last["tokens"] + sum(e["tokens"] for e in earlier),
                "final_loss": round(last["loss"], 4)}
    if earlier:
        training["stages"] = [{"run": d.name, "steps": e["step"], "tokens": e["tokens"]}
                              for d, e in zip([*(d for d, _ in stages), args.run_dir], [*earlier, last])]
    card = {"summary": args.summary, "training": training, "figures": figs,
            "limitations": "Trained on CPU at a small fraction of the paper's budget; see the figures."}
    dest = ship_model(src, args.name, card)
    print(json.dumps(figs, indent=1))
    print("shipped", dest)
    return 0


# ---- headline figures of the issue-16 analyses, and re-measuring them on a shipped model ------------------------

#: analyses whose card figures carry headline records (figure, control, majority, n, CI or seed range, verdict)
OWN = ("analyses.v_probe", "analyses.regret_probe", "analyses.retry_upon_regret", "analyses.attention_boundary",
       "analyses.generation", "analyses.nt_probe")
PAPER = {"nece acc": 99.0, "can_next acc": 99.0, "regret probe held-out acc": 99.0, "first mistakes caught": 60.0}


def own_calls(model) -> list[str]:
    """The default calls (the paper's measures) whose headline figures go on the card."""
    spec = model.cfg.task
    if spec["kind"] == "igsm":
        import tasks

        t = tasks.from_spec(spec)
        sets = (f"op={t.config.op_max}", f"op={t.ood_ops()[0]}")
        return ['analyses.v_probe(model, probe="nece")', 'analyses.v_probe(model, probe="can_next")',
                "analyses.regret_probe(model)", f"analyses.retry_upon_regret(model, n=64, sets={sets!r})"]
    calls = [f"analyses.attention_boundary(model, n={96 if spec.get('grammar') != 'demo' else 192})",
             "analyses.nt_probe(model)"]
    if spec.get("grammar") == "demo":  # cfg3b's 0% generation is left as measured (a random network cannot do worse)
        calls.insert(0, "analyses.generation(model, n=256, cut=20, controls=True)")
    return calls


def headline_figures(result, call: str) -> list[dict]:
    """Card figures from ``result.headlines()``: value and control in % (raw for non-percent figures), with n, the
    interval, the majority guess and the verdict in plain words (also spelled out in ``note``)."""
    figs = []
    for h in result.headlines():
        k = 100 if h.get("percent", True) else 1
        r = (lambda v: None if v is None or v != v else round(k * v, 1 if k == 100 else 4))
        fig = {"metric": h["metric"] + (" %" if k == 100 else ""), "value": r(h["value"]), "command": call,
               "n": h["n"], "lo": r(h["lo"]), "hi": r(h["hi"]), "spread": h["spread"], "control": r(h["control"]),
               "control_name": h.get("control_name"), "majority": r(h["majority"]), "verdict": h["verdict"]}
        if h.get("false_alarm") is not None:
            fig.update(false_alarm=r(h["false_alarm"]), control_false_alarm=r(h.get("control_false_alarm")),
                       n_false_alarm=h.get("n_false_alarm"))
        if h["metric"] in PAPER:
            fig["paper_value"] = PAPER[h["metric"]]
        bits = [f"n={h['n']}", f"{h['spread']} [{fig['lo']}, {fig['hi']}]"]
        if fig["control"] is not None:
            bits.append(f"{fig['control_name']} {fig['control']}")
        if fig["majority"] is not None:
            bits.append(f"majority guess {fig['majority']}")
        if fig.get("false_alarm") is not None:
            bits.append(f"false alarms {fig['false_alarm']}% of {fig['n_false_alarm']} correct steps "
                        f"(control {fig['control_false_alarm']}%)")
        fig["note"] = "; ".join(bits) + f". {h['verdict']}"
        figs.append(fig)
    return figs


def measure_own(model, out: Path, log=print, which: list[int] | None = None) -> list[dict]:
    """Run :func:`own_calls` (those at indices ``which``) on ``model``; save each result under ``out``; return
    the card figures."""
    figs = []
    calls = own_calls(model)
    for call in [calls[i] for i in (which if which is not None else range(len(calls)))]:
        t = time.time()
        result = eval(call[:-1] + ", progress=False)", {"analyses": analyses, "model": model})
        name = call.split("(")[0].split(".")[-1] + "".join(f"_{x}" for x in ("nece", "can_next") if f'"{x}"' in call)
        torch.set_num_threads(int(os.environ.get("PLM_THREADS", torch.get_num_threads())))
        result.save(out / name)
        new = headline_figures(result, call)
        if hasattr(result, "kl"):  # generation: the KL beside the random-init model's
            ctl = (result.control or {}).get("kl")
            new.append({"metric": "KL(truth || model) nats/pos", "value": float(f"{result.kl:.3g}"), "command": call,
                        "paper_value": {"rot": 0.0006, "abs": 0.00455}.get(model.cfg.positional),
                        "control": None if ctl is None else float(f"{ctl:.3g}"), "control_name": "random-init control",
                        "note": "paper value: cfg3f" + ("" if ctl is None else f"; random-init control {ctl:.3g}")})
        log(f"{call}: {time.time() - t:.0f} s\n{result.table()}")
        figs += new
    return figs


def _own(f: dict) -> bool:
    return f["command"].startswith(OWN) and not f["command"].startswith("analyses.generation(model, n=256, cut=50)")


def refresh_detection(fig: dict) -> dict:
    """Recompute a stored detection figure's verdict and note from its numbers (with the current wording)."""
    from analyses.result import verdict

    if fig.get("false_alarm") is None:
        return fig
    h = {"value": fig["value"] / 100, "n": fig["n"], "false_alarm": fig["false_alarm"] / 100,
         "n_false_alarm": fig["n_false_alarm"], "control": fig["control"] / 100,
         "control_false_alarm": fig["control_false_alarm"] / 100}
    fig["verdict"] = verdict(h)
    fig["note"] = fig["note"].rsplit(". ", 1)[0] + f". {fig['verdict']}"
    return fig


def apply_figures(name: str, after: list[dict]) -> dict:
    """Replace the issue-16 analyses' figures on a shipped model's card with ``after`` (re-measured headline
    figures; other analyses' figures are kept untouched); returns {"before": [...], "after": [...]}."""
    from plm_interp.pretrained import model_dir
    from plm_interp.pretrained.card import check_card, render_markdown

    d = model_dir(name)
    card = json.loads((d / "card.json").read_text())
    own = _own
    before = [f for f in card["figures"] if own(f)]
    after = [refresh_detection(f) for f in after]
    for f in card["figures"]:  # kept generation figures (not re-run): their n, 95% interval and verdict
        if f["command"].startswith("analyses.generation(") and f["metric"].startswith("generation accuracy"):
            from analyses.result import wilson

            lo, hi = wilson(f["value"] / 100 * 256, 256)
            f.update(n=256, lo=round(100 * lo, 1), hi=round(100 * hi, 1), spread="95% CI")
            if f["value"] == 0:
                f["verdict"] = "0 valid strings: no better than a random-init network (which cannot do worse)"
                f["note"] = f"n=256; 95% CI [{f['lo']}, {f['hi']}]. {f['verdict']}"
    card["figures"] = [f for f in card["figures"] if not own(f)] + after
    check_card(card, name)
    (d / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    (d / "MODEL_CARD.md").write_text(render_markdown(card))
    return {"before": before, "after": after}


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 3 and sys.argv[1] == "--measure":  # --measure NAME OUT.json [CALL INDICES...]
        from plm_interp.pretrained import load_pretrained

        torch.set_num_threads(1)
        which = [int(x) for x in sys.argv[4:]] or None
        m = load_pretrained(sys.argv[2]).eval()
        figs = measure_own(m, ROOT / "docs" / "figures" / sys.argv[2], which=which)
        Path(sys.argv[3]).write_text(json.dumps(figs, indent=1))
        raise SystemExit(0)
    if len(sys.argv) > 3 and sys.argv[1] == "--apply":  # --apply NAME FIGS.json... (in call order) -> card
        figs = [f for path in sys.argv[3:] for f in json.loads(Path(path).read_text())]
        print(json.dumps(apply_figures(sys.argv[2], figs), indent=1))
        raise SystemExit(0)
    raise SystemExit(main())
