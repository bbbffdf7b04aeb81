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
    probe = analyses.nt_probe(model, n_train=probe_n[0], n_test=probe_n[1], steps=600, progress=False)
    probe.save(out / "nt_probe")
    call = f"analyses.nt_probe(model, n_train={probe_n[0]}, n_test={probe_n[1]}, steps=600)"
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


if __name__ == "__main__":
    raise SystemExit(main())
