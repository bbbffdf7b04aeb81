"""Part 1 at CPU scale: train small rot, abs and encoder (DeBERTa-style, masked LM) models on a built-in grammar
and measure the paper's qualitative results (generation accuracy, NT probes vs the random-init control).

    python bench/part1_cpu_evidence.py --steps 1500 --out runs/part1-cpu      # ~25 min on 2 cores
    python bench/part1_cpu_evidence.py --reuse rot=/path/to/final ...          # analyse existing checkpoints

Writes ``evidence.json`` and ``evidence.md``; docs/part1_cpu_evidence.md quotes the figures.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


import analyses
from plm_interp import HookedPLM, preset_config
from plm_interp.training import TaskSource, TrainConfig, train
from tasks.cfg import CFGTask

MODELS = {"rot": dict(positional="rot"), "abs": dict(positional="abs"),
          "encoder": dict(positional="rel", attention_dir="bidirectional")}


def train_one(name, task, args, out: Path) -> HookedPLM:
    cfg = preset_config(args.preset, d_vocab=task.d_vocab, n_ctx=args.n_ctx, seed=args.seed, task=task.spec(),
                        **MODELS[name])
    model = HookedPLM(cfg)
    source = TaskSource(task, args.n_ctx, masked=name == "encoder")
    train(model, source, TrainConfig(batch_size=32, max_steps=args.steps, lr=1e-3, warmup_steps=100,
                                     schedule="linear", min_lr_ratio=0.1, seed=args.seed, num_workers=0,
                                     progress=args.progress, log_every=100), out / name / "train")
    model.save_pretrained(out / name / "final")
    return model


def evaluate(name, model, task, args) -> dict:
    row = {"model": name}
    if model.cfg.attention_dir == "causal":
        gen = analyses.generation(model, task, n=args.n_eval, cut=20, seed=args.seed, progress=args.progress)
        row.update({f"gen {k} %": round(100 * v, 1) for k, v in gen.accuracy.items()}, kl=gen.kl)
    probe = analyses.nt_probe(model, task, n_train=1024, n_test=256, steps=args.probe_steps, seed=args.seed,
                              progress=args.progress)
    for l in probe.levels:
        for kind in ("nt_all", "nt_end_diag"):
            row[f"{kind} NT{l + 1} %"] = round(100 * probe.accuracy(kind, l), 1)
            row[f"{kind} NT{l + 1} % (random-init)"] = round(100 * probe.accuracy(kind, l, model="random-init"), 1)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grammar", default="demo")
    p.add_argument("--preset", default="small")
    p.add_argument("--n-ctx", type=int, default=128)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--probe-steps", type=int, default=600)
    p.add_argument("--n-eval", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="rot,abs,encoder")
    p.add_argument("--reuse", action="append", default=[], metavar="NAME=CHECKPOINT")
    p.add_argument("--out", default="runs/part1-cpu")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()
    task, out = CFGTask(args.grammar), Path(args.out)
    reuse = dict(item.split("=", 1) for item in args.reuse)
    rows = []
    for name in args.models.split(","):
        model = HookedPLM.from_pretrained(reuse[name]) if name in reuse else train_one(name, task, args, out)
        rows.append(evaluate(name, model.eval(), task, args))
        print(json.dumps(rows[-1]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evidence.json").write_text(json.dumps(rows, indent=2))
    cols = list(dict.fromkeys(k for r in rows for k in r))
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    (out / "evidence.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
