"""P4 benchmark: iGSM problems/s on one core at the med and hard settings, side by side with the authors'.

The authors' rejection-sampling generator (facebookresearch/iGSM) makes about 27 hard problems/s on one core
(reference/PAPERS.md; run once on our box the README's way it made 86 med / 36 hard per CPU-second, see
docs/igsm.md; not re-run here: it needs networkx and their tokenizer). Ours runs the authors' algorithm
(tasks/igsm/construct.py) and keeps their distribution exactly, without their rejection of most draws.
Prints problems per CPU-second (``time.process_time``, so a busy shared machine does not distort the per-core
rate) for generation alone and for generation + tokenisation, the op histogram and the mean tokens per problem.

    python bench/igsm_generate.py [--n 2000] [--seed 0]
"""
from __future__ import annotations

import argparse
import random
import time
from collections import Counter

from tasks.igsm import PRESETS, generate, get_tokenizer
from tasks.igsm.sequence import encode

AUTHORS_HARD_PER_S = 27.0


def run(preset: str, n: int, seed: int) -> dict:
    cfg = PRESETS[preset]
    tok = get_tokenizer(cfg.modulus)
    rng = random.Random(seed)
    t0 = time.process_time()
    probs = [generate(cfg, rng) for _ in range(n)]
    gen_s = time.process_time() - t0
    t0 = time.process_time()
    lengths = [len(encode(p, tok).ids) for p in probs]
    tok_s = time.process_time() - t0
    return {"preset": preset, "gen_per_s": n / gen_s, "full_per_s": n / (gen_s + tok_s),
            "mean_tokens": sum(lengths) / n, "max_tokens": max(lengths), "ops": Counter(p.op for p in probs),
            "op_max": cfg.op_max}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"{'preset':6} {'gen/s':>8} {'gen+tok/s':>10} {'vs authors':>10} {'mean tok':>9} {'max tok':>8}")
    for preset in ("med", "hard"):
        r = run(preset, args.n, args.seed)
        ratio = r["full_per_s"] / AUTHORS_HARD_PER_S
        print(f"{preset:6} {r['gen_per_s']:8.0f} {r['full_per_s']:10.0f} {ratio:9.1f}x {r['mean_tokens']:9.1f}"
              f" {r['max_tokens']:8d}")
        M = r["op_max"]
        hist = " ".join(f"{k}:{r['ops'][k]}" for k in range(1, M + 1))
        expect = " ".join(f"{k}:{args.n * (2 * (M - k) + 1) / M**2:.0f}" for k in range(1, M + 1))
        print(f"  op histogram          {hist}\n  min-of-two-uniforms   {expect}")
    print(f"authors' generator: ~{AUTHORS_HARD_PER_S:.0f} hard problems/s/core (PAPERS.md; 36 hard / 86 med per "
          f"CPU-second measured once on our box, docs/igsm.md); target P4 >= 10x")


if __name__ == "__main__":
    main()
