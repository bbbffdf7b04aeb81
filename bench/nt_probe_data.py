"""Is the nt_probe figure limited by the fit's budget or by its training strings? (issue 17, docs/analyses.md)

Fits the full-mode probe (eq. 4.2, the paper's 16 heads × width 1024) of one level on a shipped model's last layer
for several training-set sizes and iteration budgets, and prints training and held-out accuracy side by side:

    python bench/nt_probe_data.py                                # demo-rot, NT2, 1024 and 4096 strings (~3 min)
    python bench/nt_probe_data.py --strings 1024,4096,8192 --iters 100,200,500 --level 2
    python bench/nt_probe_data.py --strings 1024 --iters 500,3000 --level 2   # the 500 cap vs the converged fit

A fit that reaches 100% on its training strings while the held-out figure stays flat is data-limited: more
iterations do not change the figure, more strings do.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo-rot")
    ap.add_argument("--level", type=int, default=1, help="NT level (0 = root; 1 = NT2)")
    ap.add_argument("--strings", default="1024,4096", help="training-set sizes, comma-separated")
    ap.add_argument("--iters", default="100,200,500", help="L-BFGS iteration budgets, comma-separated")
    ap.add_argument("--n-test", type=int, default=512)
    args = ap.parse_args()

    from analyses._task import resolve_task
    from analyses.nt_probe import PROBE, _specials, _targets
    from plm_interp.probes import MultiHeadLinearProbe, cache_residuals, fit_probe, predict
    from plm_interp.pretrained import load_pretrained
    from plm_interp.runtime import torch_threads

    model = load_pretrained(args.model)
    task = resolve_task(model, None, kind="cfg")
    layer = model.cfg.n_layers
    test = task.sample(args.n_test, seed=1)
    print(f"{args.model}, layer {layer}, NT{args.level + 1}, full probe {PROBE}, {args.n_test} held-out strings\n")
    print("| training strings | iterations used of budget | converged | seconds | train acc | held-out acc |\n|---|---|---|---|---|---|")
    with torch_threads():
        a_te = cache_residuals(model, test.tokens, [layer])[layer]
        v_te = test.terminal_mask | _specials(test)
        y_te = _targets(test, args.level)["nt_all"]
        for n in (int(x) for x in args.strings.split(",")):
            train = task.sample(n, seed=0)
            a_tr = cache_residuals(model, train.tokens, [layer])[layer]
            v_tr = train.terminal_mask | _specials(train)
            y_tr = _targets(train, args.level)["nt_all"]
            n_cls = int(max(train.s[..., args.level].max(), test.s[..., args.level].max())) + 1
            n_ctx = max(train.tokens.shape[1], test.tokens.shape[1])
            for budget in (int(x) for x in args.iters.split(",")):
                probe = MultiHeadLinearProbe(model.cfg.d_model, n_cls, n_ctx, mode="full", seed=0, **PROBE)
                t = time.perf_counter()
                report = fit_probe(probe, a_tr, v_tr, y_tr, max_iter=budget)
                wall = time.perf_counter() - t
                acc = {}
                for name, a, v, y in (("train", a_tr, v_tr, y_tr), ("test", a_te, v_te, y_te)):
                    sel = y >= 0
                    acc[name] = 100 * float((predict(probe, a, v)[sel] == y[sel]).float().mean())
                print(f"| {n:,} | {report.iterations} of {budget} | {report.converged} | {wall:.0f} | {acc['train']:.2f} | {acc['test']:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
