"""The default V-probe fit beside a long fit of the same probe (issue 32): same training queries, same start, same
held-out queries; prints one JSON line per fit (time, held-out figure, majority, validation curve).

    python bench/v_probe_long.py nece igsm-small        # default, then 2,000 steps without early stopping (~10 min)
    python bench/v_probe_long.py nece igsm-small 1      # the long fit only

Why: the default stops when its validation figure has converged; this shows what running on would have given.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    import torch

    from analyses.shared.igsm_inputs import igsm_task
    from analyses.shared.v_queries import probe_examples
    from plm_interp.pretrained import load_pretrained
    from plm_interp.probes import FigureStop, VFit, fit_v_probe, score

    probe = sys.argv[1] if len(sys.argv) > 1 else "nece"
    model = load_pretrained(sys.argv[2] if len(sys.argv) > 2 else "igsm-small")
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    torch.set_num_threads(2)
    task = igsm_task(model)
    train = probe_examples(task, [x.problem for x in task.sample(2000, seed=0).samples], probe, 4, 0)
    test = probe_examples(task, [x.problem for x in task.sample(250, seed=1).samples], probe, 4, 1)
    fits = [("default", VFit()),
            ("long", VFit(max_steps=2000, check_every=100, rule=FigureStop(patience=1000, max_checks=1000)))]
    for name, fit in fits[first:]:
        t = time.perf_counter()
        vp = fit_v_probe(model, train, model.cfg.n_layers, 2, fit=fit)
        wall = time.perf_counter() - t
        s, fi = score(vp.predict(model, test), test.labels, train.labels), vp.fit_info
        print(json.dumps({"probe": probe, "fit": name, "steps": fi["steps"], "wall_s": round(wall, 1),
                          "test": round(100 * s["acc"], 2), "majority": round(100 * s["majority"], 2),
                          "val": round(100 * fi["val_acc"], 2), "train": round(100 * fi["train_acc"], 2),
                          "reason": fi["stop_reason"],
                          "val_curve": [(st, round(100 * v, 1)) for st, v in fi["val_curve"]]}), flush=True)


if __name__ == "__main__":
    main()
