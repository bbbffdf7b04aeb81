"""``plm-interp quickstart``: the whole loop of Part 1 on a CPU in minutes.

Train a small model on a built-in grammar (default: rot on ``demo``), then measure generation accuracy,
probe the parse tree (nt_probe) and the attention to NT boundaries (attention_boundary), and write a Markdown
report with PNG plots into a run directory. Every default can be overridden on the command line.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from plm_interp.io import atomic_write_bytes


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="train a small CFG model on CPU, analyse it, write a report")
    p.add_argument("--grammar", default="demo", help="built-in grammar name or grammar file (default demo)")
    p.add_argument("--positional", default="rot", help="positional scheme (abs rot rel pos uni none)")
    p.add_argument("--preset", default="small", help="model size preset (tiny, small, gpt2-small)")
    p.add_argument("--n-ctx", type=int, default=128, help="training context; must hold one whole string")
    p.add_argument("--steps", type=int, default=1200, help="training steps (batch 32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--probe-steps", type=int, default=600, help="nt_probe training steps")
    p.add_argument("--n-eval", type=int, default=256, help="generated strings for the accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default=None, help="default runs/quickstart-<time>")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    import analyses
    from plm_interp import HookedPLM, preset_config
    from plm_interp.training import TaskSource, TrainConfig, train
    from tasks.cfg import CFGTask

    task = CFGTask(args.grammar)  # bad names/values fail here, before anything is written
    cfg = preset_config(args.preset, d_vocab=task.d_vocab, n_ctx=args.n_ctx, positional=args.positional,
                        seed=args.seed, task=task.spec())
    longest = task.grammar.length_range()[1] + 2
    if longest > args.n_ctx:
        raise ValueError(f"--n-ctx {args.n_ctx} cannot hold the longest {args.grammar} string ({longest} tokens)")
    train_cfg = TrainConfig(batch_size=args.batch_size, max_steps=args.steps, lr=args.lr, warmup_steps=100,
                            schedule="linear", min_lr_ratio=0.1, seed=args.seed, num_workers=0,
                            progress=not args.no_progress, log_every=50, ckpt_every=max(100, args.steps // 3))
    run_dir = Path(args.run_dir or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    torch.manual_seed(args.seed)
    progress = not args.no_progress
    timings = {}
    t0 = time.perf_counter()
    model = HookedPLM(cfg)
    result = train(model, TaskSource(task, args.n_ctx), train_cfg, run_dir / "train")
    model.save_pretrained(run_dir / "model")
    timings["train"] = time.perf_counter() - t0
    model.eval()
    steps = [("generation", dict(n=args.n_eval, cut=min(50, longest // 4), seed=args.seed)),
             ("nt_probe", dict(n_train=1024, n_test=256, steps=args.probe_steps, seed=args.seed)),
             ("attention_boundary", dict(n=128, seed=args.seed))]
    results = {}
    for name, options in steps:
        t = time.perf_counter()
        results[name] = analyses.run(name, model, task, progress=progress, **options)
        results[name].save(run_dir / name)
        timings[name] = time.perf_counter() - t
    headline = _headline(results, result)
    report = _report(args, cfg, headline, results, timings)
    atomic_write_bytes(run_dir / "report.md", report.encode())
    atomic_write_bytes(run_dir / "headline.json", (json.dumps(headline, indent=2) + "\n").encode())
    total = sum(timings.values())
    print(f"\nquickstart done in {total / 60:.1f} min; report: {run_dir / 'report.md'}")
    for key, value in headline.items():
        print(f"  {key}: {value}")
    return 0


def _headline(results, train_result) -> dict:
    gen, probe, att = results["generation"], results["nt_probe"], results["attention_boundary"]
    deepest = probe.levels[-1]
    b = att.b_mean("end->end").max().item(), att.b_mean("other->other").max().item()
    return {
        "final training loss": round(train_result.loss, 4) if train_result.loss is not None else None,
        "generation accuracy cut0 %": round(100 * gen.accuracy["cut0"], 1),
        **{f"generation accuracy {k} %": round(100 * v, 1) for k, v in gen.accuracy.items() if k != "cut0"},
        "KL(truth || model) nats/pos": float(f"{gen.kl:.3g}"),
        **{f"nt_probe NT{l + 1} at NT-ends (diag) %, trained / random-init": (
            round(100 * probe.accuracy("nt_end_diag", l), 1),
            round(100 * probe.accuracy("nt_end_diag", l, model="random-init"), 1)) for l in probe.levels},
        f"NT-end probe b (NT{deepest + 1}) %": round(100 * probe.accuracy("end_bit", deepest), 1),
        "best head B, NT-end->NT-end vs other->other": (round(b[0], 4), round(b[1], 4)),
    }


def _report(args, cfg, headline, results, timings) -> str:
    lines = [f"# plm-interp quickstart: {args.positional} on {args.grammar}", "",
             f"Model: preset `{args.preset}` ({cfg.n_layers} layers, {cfg.n_heads} heads, d_model {cfg.d_model}), "
             f"positional `{cfg.positional}`, {args.steps} steps × batch {args.batch_size} × {args.n_ctx} tokens.",
             "", "## Headline", ""]
    lines += [f"- **{k}**: {v}" for k, v in headline.items()]
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), ""]
    for name, res in results.items():
        lines += [f"## {name}", "", res.table(), "", f"![{name}]({name}/plot.png)", ""]
    return "\n".join(lines)
