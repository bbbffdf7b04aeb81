"""``plm-interp quickstart``: the whole loop of Part 1 on a CPU in minutes.

Train a small model on a built-in grammar (default: rot on ``demo``), then measure generation accuracy,
probe the parse tree (nt_probe, beside its random-init control) and the attention to NT boundaries
(attention_boundary), and write a Markdown report with PNG plots into a run directory.

Why a reference model: a few CPU minutes of training do not learn the grammar yet (generation accuracy of a
few percent), so the paper's phenomenon would not be visible in the fresh run alone. When the shipped
``demo-rot`` (the same recipe trained 5x longer) matches the grammar, the same analyses run on it too and the
report shows both side by side, each clearly labelled.

Threads: torch threads and data workers are chosen from the cores actually free (``plm_interp.runtime``) and
logged, so the quickstart does not oversubscribe a machine shared with another job.

One run directory, one set of arguments: the arguments are recorded in ``quickstart.json``; a second call on an
existing run directory is refused unless it passes ``--resume`` with the same arguments.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from plm_interp.io import atomic_write_bytes

#: options that define the run (a resume must repeat them); the others only change how it is shown
RUN_KEYS = ("grammar", "positional", "preset", "n_ctx", "steps", "batch_size", "lr", "probe_max_iter", "n_probe",
            "n_eval", "seed", "reference")
ARGS_FILE = "quickstart.json"
REFERENCE = {"demo": "demo-rot"}  # grammar -> shipped model trained on it
#: the nt_probe kinds the quickstart fits and reports (the report names the call that fits all four)
QUICK_PROBES = ["nt_end_diag", "end_bit"]


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="train a small CFG model on CPU, analyse it, write a report")
    p.add_argument("--grammar", default="demo", help="built-in grammar name or grammar file (default demo)")
    p.add_argument("--positional", default="rot", help="positional scheme (abs rot rel pos uni none)")
    p.add_argument("--preset", default="small", help="model size preset (tiny, small, gpt2-small)")
    p.add_argument("--n-ctx", type=int, default=128, help="training context; must hold one whole string")
    p.add_argument("--steps", type=int, default=1200, help="training steps (batch 32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--probe-max-iter", type=int, default=None,
                   help="L-BFGS iteration cap per probe (default: none below the figure rule's own; each probe stops "
                        "when its validation figure has converged, and the report says whether it did)")
    p.add_argument("--n-probe", type=int, default=1024, help="nt_probe training strings (test: half as many)")
    p.add_argument("--n-eval", type=int, default=256, help="generated strings for the accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", default="auto",
                   help="shipped model analysed beside the fresh one ('auto': demo-rot for the demo grammar; 'none')")
    p.add_argument("--run-dir", default=None, help="default runs/quickstart-<time>")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (same arguments)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    import analyses
    from plm_interp import HookedPLM, preset_config
    from plm_interp.runtime import core_budget
    from plm_interp.training import TaskSource, TrainConfig, train
    from tasks.cfg import CFGTask

    task = CFGTask(args.grammar)  # bad names/values fail here, before anything is written
    cfg = preset_config(args.preset, d_vocab=task.d_vocab, n_ctx=args.n_ctx, positional=args.positional,
                        seed=args.seed, task=task.spec())
    longest = task.grammar.length_range()[1] + 2
    if longest > args.n_ctx:
        raise ValueError(f"--n-ctx {args.n_ctx} cannot hold the longest {args.grammar} string ({longest} tokens)")
    if args.n_probe < 2:
        raise ValueError(f"--n-probe {args.n_probe} must be >= 2 (training strings; the test set is half as many)")
    if args.probe_max_iter is not None and args.probe_max_iter < 1:
        raise ValueError(f"--probe-max-iter {args.probe_max_iter} must be >= 1 (omit it to fit to convergence)")
    reference = _reference_name(args)
    cores = core_budget()
    # built (so --steps, --batch-size, --lr are checked) before _claim_run_dir writes quickstart.json: a refused
    # command must leave nothing that makes its corrected form "already holds a run"
    try:
        train_cfg = TrainConfig(batch_size=args.batch_size, max_steps=args.steps, lr=args.lr, warmup_steps=100,
                                schedule="linear", min_lr_ratio=0.1, seed=args.seed,
                                num_workers=cores.workers, progress=not args.no_progress, log_every=50,
                                ckpt_every=max(100, args.steps // 3)).validate()
    except ValueError as exc:  # name the flag the user typed beside the config key
        flags = {"train.max_steps": "--steps", "train.batch_size": "--batch-size", "train.lr": "--lr"}
        raise ValueError(f"{exc} (" + ", ".join(f"{k} is {f}" for k, f in flags.items() if k in str(exc)) + ")") \
            from None
    run_dir = Path(args.run_dir or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    _claim_run_dir(run_dir, args)
    torch.set_num_threads(cores.threads)
    print(f"quickstart: {cores.reason}", flush=True)
    torch.manual_seed(args.seed)
    progress = not args.no_progress
    timings = {}
    t0 = time.perf_counter()
    model = HookedPLM(cfg)
    result = train(model, TaskSource(task, args.n_ctx), train_cfg, run_dir / "train", resume=args.resume)
    model.save_pretrained(run_dir / "model")
    timings["train"] = time.perf_counter() - t0
    model.eval()
    subjects = {"this run": (model, run_dir)}
    if reference is not None:
        from plm_interp.pretrained import load_pretrained
        subjects[f"shipped {reference}"] = (load_pretrained(reference), run_dir / "reference" / reference)
    results: dict[str, dict] = {}
    for label, (subject, out_dir) in subjects.items():
        results[label] = {}
        for name, options in _analyses(args, longest).items():
            t = time.perf_counter()
            results[label][name] = analyses.run(name, subject, task, progress=progress, **options)
            results[label][name].save(out_dir / name)
            timings[f"{name} ({label})"] = time.perf_counter() - t
    headline = {label: _headline(res, result if label == "this run" else None) for label, res in results.items()}
    report = _report(args, cfg, cores, headline, results, timings, reference)
    atomic_write_bytes(run_dir / "report.md", report.encode())
    atomic_write_bytes(run_dir / "headline.json", (json.dumps(headline, indent=2) + "\n").encode())
    total = sum(timings.values())
    print(f"\nquickstart done in {total / 60:.1f} min; report: {run_dir / 'report.md'}")
    for label, lines in headline.items():
        print(f"  [{label}]")
        for key, value in lines.items():
            print(f"    {key}: {value}")
    return 0


def _reference_name(args) -> str | None:
    if args.reference == "none":
        return None
    if args.reference == "auto":
        return REFERENCE.get(args.grammar)
    from plm_interp.pretrained import list_models
    if args.reference not in list_models():
        raise ValueError(f"--reference {args.reference!r} is not a shipped model: one of {list_models()} or 'none'")
    return args.reference


def _claim_run_dir(run_dir: Path, args) -> None:
    """Refuse a run directory that holds another run (or this one without ``--resume``), then record the args."""
    mine = {k: getattr(args, k) for k in RUN_KEYS}
    if run_dir.exists() and any(run_dir.iterdir()):
        saved_file = run_dir / ARGS_FILE
        if not args.resume:
            raise ValueError(f"--run-dir {run_dir} already holds a run: pass --resume with the same arguments to "
                             "continue it, or choose a new --run-dir")
        if not saved_file.exists():
            raise ValueError(f"--run-dir {run_dir} is not a quickstart run directory (no {ARGS_FILE}); "
                             "choose a new --run-dir")
        saved = json.loads(saved_file.read_text())
        changed = [f"--{k.replace('_', '-')} {saved.get(k)!r} there, {mine[k]!r} now" for k in RUN_KEYS
                   if saved.get(k) != mine[k]]
        if changed:
            raise ValueError(f"--resume on {run_dir} with other arguments ({'; '.join(changed)}): resume with the "
                             "recorded arguments or choose a new --run-dir")
        return
    atomic_write_bytes(run_dir / ARGS_FILE, (json.dumps(mine, indent=2) + "\n").encode())


def _analyses(args, longest: int) -> dict[str, dict]:
    return {"generation": dict(n=args.n_eval, cut=min(50, longest // 4), seed=args.seed),
            # the kinds the headline reports: the linear NT-end probes fit in seconds, where the full and
            # tridiagonal probes need minutes per model on a CPU to converge (docs/analyses.md)
            "nt_probe": dict(n_train=args.n_probe, n_test=args.n_probe // 2, seed=args.seed, probes=QUICK_PROBES,
                             **({"fit": {"max_iter": args.probe_max_iter}} if args.probe_max_iter else {})),
            "attention_boundary": dict(n=128, seed=args.seed)}


def _headline(results, train_result) -> dict:
    gen, probe, att = results["generation"], results["nt_probe"], results["attention_boundary"]
    deepest = probe.levels[-1]
    sh = att.same_head()   # every pair kind on the one head with the largest end->end B (Part 1 §5.2)
    out = {}
    if train_result is not None:
        out["final training loss"] = round(train_result.loss, 4) if train_result.loss is not None else None
    out.update({
        "generation accuracy cut0 %": round(100 * gen.accuracy["cut0"], 1),
        **{f"generation accuracy {k} %": round(100 * v, 1) for k, v in gen.accuracy.items() if k != "cut0"},
        "KL(truth || model) nats/pos": float(f"{gen.kl:.3g}"),
        **{f"nt_probe NT{l + 1} at NT-ends (diag) %, trained / random-init / majority": (
            round(100 * probe.accuracy("nt_end_diag", l), 1),
            round(100 * probe.accuracy("nt_end_diag", l, model="random-init"), 1),
            round(100 * _majority(probe, "nt_end_diag", l), 1)) for l in probe.levels},
        f"NT-end probe b (NT{deepest + 1}) %, trained / random-init": (
            round(100 * probe.accuracy("end_bit", deepest), 1),
            round(100 * probe.accuracy("end_bit", deepest, model="random-init"), 1)),
        "probes converged": probe.settings["converged"],
        f"B on head L{sh['layer']}H{sh['head']}, end->end / other->end / end->other / other->other": tuple(
            None if sh[k] is None else round(sh[k], 4) for k in ("end->end", "other->end", "end->other", "other->other")),
    })
    return out


def _majority(probe, kind: str, level: int) -> float:
    return next(r["majority"] for r in probe.records if (r["model"], r["probe"], r["level"], r["layer"]) ==
                ("trained", kind, level, probe.layers[-1]))


def _report(args, cfg, cores, headline, results, timings, reference) -> str:
    lines = [f"# plm-interp quickstart: {args.positional} on {args.grammar}", "",
             f"Model: preset `{args.preset}` ({cfg.n_layers} layers, {cfg.n_heads} heads, d_model {cfg.d_model}), "
             f"positional `{cfg.positional}`, {args.steps} steps × batch {args.batch_size} × {args.n_ctx} tokens.",
             f"Machine: {cores.reason}.", ""]
    if reference is not None:
        lines += [f"**Reference:** `shipped {reference}` is the package's pretrained {reference} (loaded, not trained "
                  "here; see its model card), analysed with the same calls beside this run so that the paper's "
                  "phenomenon is visible even when a few CPU minutes have not yet learned the grammar.", ""]
    labels = list(headline)
    keys = list(dict.fromkeys(k for h in headline.values() for k in h))
    lines += ["## Headline", "", "| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {k} | " + " | ".join(str(headline[l].get(k, "")) for l in labels) + " |" for k in keys]
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), "",
              f"nt_probe fits the NT-end probes the headline reports ({', '.join(QUICK_PROBES)}); the all-position "
              "(full, Result 4) and tridiagonal probes take minutes per model on a CPU: "
              "`analyses.nt_probe(model)` fits all four.", ""]
    for label, res in results.items():
        prefix = "" if label == "this run" else f"reference/{reference}/"
        for name, r in res.items():
            lines += [f"## {name} ({label})", "", r.table(), "", f"![{name} ({label})]({prefix}{name}/plot.png)", ""]
    return "\n".join(lines)
