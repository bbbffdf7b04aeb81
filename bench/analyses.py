"""Issue 17: analyses at interactive speed. Wall time, peak memory and convergence of the default calls on the
shipped models, each beside a peer measured in the same run, idle and beside one busy job.

    python bench/analyses.py                 # everything (minutes; run in the background, note the load)
    python bench/analyses.py --only demo-rot:nt_probe --busy

Each call runs in a fresh subprocess (peak RSS is then the call's own; import time is not counted); its result is
saved under ``$PLM_BENCH_OUT`` (default ``runs/bench/MODEL/ANALYSIS``). Peers:

* linear probes: scikit-learn's ``LogisticRegression(solver="lbfgs")`` on the same cached features and the
  same objective (C = 1 / (ridge · rows)), beside our :func:`plm_interp.probes.fit_probe` (time, test accuracy);
* decoding: transformers' ``generate`` (KV cache, sampling) on a Llama of equal size (layers, heads, width, MLP
  parameter count, vocabulary), tokens per second beside ours on the same batch and length.

Each call runs first with an empty random-init control cache (``cold``: the control is fitted, as on a first call)
and, where it fitted a control, once more on the same cache (``warm``: the control is read back, as on every later
checkpoint of the same architecture; analyses/shared/control_cache.py); ``--cold-only`` skips the second call.

``--busy`` starts one busy process (a single-threaded spin, "one other job") for the duration and reports each
call's time beside its idle figure (target: at most 2x). Targets (BRIEF §6 P8, this 2-core CPU, default calls with
their controls): nt_probe demo-rot <= 60 s, cfg3b-rot <= 300 s; generation (256 strings) and attention_boundary on
demo-rot <= 15 s; v_probe and regret_probe on igsm-small <= 60 s. Each call's line also gives its headline figure
beside control, majority and n, and the fit's work (iterations or steps); ``--json FILE`` keeps every line.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this file is named like the `analyses` package: run as a script, its own folder must not shadow the package
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
CALLS = {  # (model, analysis): (keyword arguments, target seconds)
    ("demo-rot", "nt_probe"): ({}, 60),
    ("demo-rot", "generation"): ({"n": 256, "cut": 20}, 15),
    ("demo-rot", "attention_boundary"): ({}, 15),
    ("cfg3b-rot", "nt_probe"): ({}, 300),
    ("igsm-small", "v_probe"): ({"probe": "nece"}, 60),
    ("igsm-small", "regret_probe"): ({}, 60),
}


def one_call(model_name: str, analysis: str) -> dict:
    """Run one default call in this process; wall time, peak RSS, convergence."""
    import analyses
    from plm_interp.pretrained import load_pretrained

    kwargs, target = CALLS[(model_name, analysis)]
    model = load_pretrained(model_name)
    t = time.perf_counter()
    result = analyses.run(analysis, model, progress=False, **kwargs)
    wall = time.perf_counter() - t
    result.save(Path(os.environ.get("PLM_BENCH_OUT", ROOT / "runs" / "bench")) / model_name / analysis)
    settings = getattr(result, "settings", {}) or {}
    heads = [{k: h.get(k) for k in ("metric", "value", "lo", "hi", "control", "majority", "n", "verdict")}
             for h in result.headlines()]
    records = getattr(result, "records", []) or []
    work = [r.get("iterations", r.get("steps")) for r in records if r.get("iterations", r.get("steps")) is not None]
    return {"model": model_name, "analysis": analysis, "wall_s": round(wall, 1), "target_s": target,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "converged": settings.get("converged", "n/a"), "control_fit": settings.get("control_fit"), "threads": settings.get("torch_threads", "n/a"),
            "headlines": heads, "fit_work": {"fits": len(work), "total": sum(work), "max": max(work, default=0)},
            # each fit's work and why it stopped: where an analysis's time goes (docs/analyses.md)
            "per_fit": [{k: r[k] for k in ("model", "layer", "level", "probe", "iterations", "steps", "stop_reason")
                         if k in r} for r in records if "iterations" in r or "steps" in r]}


def sklearn_peer(model_name: str = "demo-rot") -> list[dict]:
    """Our diagonal (linear) probe fit beside scikit-learn's lbfgs logistic regression, same features/objective."""
    from sklearn.linear_model import LogisticRegression

    from analyses.nt_probe import _specials, _targets
    from plm_interp.probes import RIDGE, MultiHeadLinearProbe, cache_residuals, fit_probe, predict
    from plm_interp.pretrained import load_pretrained
    from plm_interp.runtime import torch_threads
    from tasks.cfg import CFGTask

    model = load_pretrained(model_name)
    task = CFGTask(model.cfg.task["grammar"])
    train, test = task.sample(1024, seed=0), task.sample(512, seed=1)
    layer = model.cfg.n_layers
    rows = []
    with torch_threads() as cores:
        a_tr = cache_residuals(model, train.tokens, [layer])[layer]
        a_te = cache_residuals(model, test.tokens, [layer])[layer]
        v_tr, v_te = train.terminal_mask | _specials(train), test.terminal_mask | _specials(test)
        for level in range(1, train.s.shape[-1]):
            for kind in ("nt_end_diag", "end_bit"):
                y_tr, y_te = _targets(train, level)[kind], _targets(test, level)[kind]
                n_cls = 2 if kind == "end_bit" else int(max(train.s[..., level].max(), test.s[..., level].max())) + 1
                probe = MultiHeadLinearProbe(model.cfg.d_model, n_cls, a_tr.shape[1], mode="diagonal")
                t = time.perf_counter()
                rep = fit_probe(probe, a_tr, v_tr, y_tr)
                ours_s = time.perf_counter() - t
                sel_te = y_te >= 0
                ours_acc = float((predict(probe, a_te, v_te)[sel_te] == y_te[sel_te]).float().mean())
                x, y = a_tr[y_tr >= 0].numpy(), y_tr[y_tr >= 0].numpy()
                clf = LogisticRegression(solver="lbfgs", C=1.0 / (RIDGE * len(y)), max_iter=10_000)
                t = time.perf_counter()
                clf.fit(x, y)
                sk_s = time.perf_counter() - t
                sk_acc = float((clf.predict(a_te[sel_te].numpy()) == y_te[sel_te].numpy()).mean())
                rows.append({"model": model_name, "probe": f"{kind} NT{level + 1}", "rows": len(y),
                             "ours_s": round(ours_s, 3), "ours_acc": round(100 * ours_acc, 2),
                             "ours_converged": rep.converged, "sklearn_s": round(sk_s, 3),
                             "sklearn_acc": round(100 * sk_acc, 2), "threads": cores.threads})
    return rows


def decoding_peer(batch: int = 256, new_tokens: int = 100) -> dict:
    """Tokens/s of sampling with a KV cache: demo-rot beside transformers' Llama of the same size."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from plm_interp.generation import generate
    from plm_interp.pretrained import load_pretrained
    from plm_interp.runtime import torch_threads

    ours = load_pretrained("demo-rot")
    c = ours.cfg
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=c.d_vocab, hidden_size=c.d_model, num_hidden_layers=c.n_layers,
                                         num_attention_heads=c.n_heads, num_key_value_heads=c.n_heads,
                                         intermediate_size=int(8 * c.d_mlp / 12), max_position_embeddings=c.n_ctx,
                                         bos_token_id=0, eos_token_id=None, pad_token_id=0)).eval()
    prompt = torch.zeros(batch, 1, dtype=torch.long)
    out = {}
    with torch_threads() as cores, torch.no_grad():
        for name, fn in {
            "ours": lambda: generate(ours, prompt, max_new_tokens=new_tokens, stop_at_eos=False, seed=0),
            "transformers": lambda: llama.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                                   do_sample=True, use_cache=True, attention_mask=torch.ones_like(prompt)),
        }.items():
            fn()  # warm-up
            t = time.perf_counter()
            fn()
            out[name] = round(batch * new_tokens / (time.perf_counter() - t))
    return {"tokens_per_s": out, "ratio": round(out["ours"] / out["transformers"], 2), "threads": cores.threads,
            "batch": batch, "new_tokens": new_tokens}


def _spin() -> None:
    while True:
        pass


def _child(args: list[str], cache: str | None = None) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **({"PLM_CACHE_DIR": cache} if cache else {})}
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def loadavg() -> str:
    """Other threads running now (the run queue, as the library reads it), beside the lagging 1-minute average."""
    from plm_interp.runtime import load_average

    minute = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "n/a"
    return f"{load_average():.1f} now / {minute} 1-min"


def _report(r: dict, m: str, a: str, mode: str, idle: dict, json_path: str | None) -> None:
    """One call's table line, its headlines, and its JSON line (``cache``: cold or warm control)."""
    if "error" in r:
        print(f"| {m} | {a} | error: {r['error']} |||||||", flush=True)
        return
    key = f"{m}:{a}:{r.get('control_fit')}"
    cache = {"fitted": "cold", "cached": "warm"}.get(r.get("control_fit"), "n/a")
    ratio = f"{r['wall_s'] / idle[key]:.2f}x" if mode == "busy" and key in idle else ""
    idle.setdefault(key, r["wall_s"])
    print(f"| {m} | {a} ({cache} control) | {r['wall_s']} | {r['target_s']} | {r['peak_rss_mb']} | {r['converged']} | "
          f"{r['threads']} | {loadavg()} | {ratio} |", flush=True)
    for h in r["headlines"][:6]:
        pct = lambda v: "" if v is None else f"{100 * v:.1f}"
        print(f"|   | {h['metric']} | {pct(h['value'])} [{pct(h['lo'])}, {pct(h['hi'])}] | control "
              f"{pct(h['control'])} | majority {pct(h['majority'])} | n {h['n']} | {h['verdict']} | fits "
              f"{r['fit_work']['fits']}, work {r['fit_work']['total']} (max {r['fit_work']['max']}) | |",
              flush=True)
    if json_path:
        with open(json_path, "a") as fh:
            fh.write(json.dumps({**r, "mode": mode, "cache": cache, "load": loadavg(),
                                 "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", help="model:analysis pairs (default all), or 'sklearn' / 'decode'")
    p.add_argument("--busy", action="store_true", help="also measure beside one busy process")
    p.add_argument("--cold-only", action="store_true",
                   help="skip the second (warm) call that reads the random-init control back from the cache")
    p.add_argument("--json", help="append every measured call (time, figures, load) to this JSON-lines file")
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--peer", choices=["sklearn", "decode"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one_call(*args.one)))
        return
    if args.peer:
        print(json.dumps(sklearn_peer() if args.peer == "sklearn" else decoding_peer()))
        return
    wanted = set(args.only or [f"{m}:{a}" for m, a in CALLS] + ["sklearn", "decode"])
    modes = ["idle", "busy"] if args.busy else ["idle"]
    idle: dict[str, float] = {}
    for mode in modes:
        spinner = mp.Process(target=_spin, daemon=True) if mode == "busy" else None
        if spinner:
            spinner.start()
            time.sleep(2)
        print(f"\n## {mode} (cores {len(os.sched_getaffinity(0))}, load average at start {loadavg()})", flush=True)
        print("| model | analysis | wall s | target s | peak RSS MB | converged | threads | load | vs idle |")
        print("|---|---|---|---|---|---|---|---|---|", flush=True)
        for m, a in CALLS:
            if f"{m}:{a}" not in wanted:
                continue
            with tempfile.TemporaryDirectory() as cache:  # cold: an empty control cache; warm: the same call again
                runs = [_child(["--one", m, a], cache)]
                if not args.cold_only and runs[0].get("control_fit") == "fitted":
                    runs.append(_child(["--one", m, a], cache))
            for r in runs:
                _report(r, m, a, mode, idle, args.json)
        if "sklearn" in wanted:
            rows = _child(["--peer", "sklearn"])
            print("\n| probe (demo-rot, last layer) | rows | ours s | ours acc % | converged | sklearn lbfgs s | "
                  "sklearn acc % |\n|---|---|---|---|---|---|---|")
            for r in (rows if isinstance(rows, list) else [rows]):
                print(" | ".join(["", *(str(r.get(k, r.get("error", ""))) for k in (
                    "probe", "rows", "ours_s", "ours_acc", "ours_converged", "sklearn_s", "sklearn_acc")), ""]))
            if isinstance(rows, list):
                tot = sum(r["ours_s"] for r in rows), sum(r["sklearn_s"] for r in rows)
                print(f"| total | | {tot[0]:.2f} | | | {tot[1]:.2f} | |  (load {loadavg()})", flush=True)
        if "decode" in wanted:
            r = _child(["--peer", "decode"])
            print(f"\ndecoding with KV cache (batch {r.get('batch')}, {r.get('new_tokens')} new tokens): "
                  f"{r.get('tokens_per_s', r)} tok/s, ours / transformers = {r.get('ratio')}x "
                  f"(threads {r.get('threads')}, load {loadavg()})", flush=True)
        if spinner:
            spinner.terminate()


if __name__ == "__main__":
    main()
