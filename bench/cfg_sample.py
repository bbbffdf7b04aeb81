"""Benchmark P3: annotated CFG sampling (tokens/s with s_l, p_l, b_l, b# for every token), one core.

Peer: a straightforward recursive Python sampler that builds the same labels one tree at a time (the shape of the
authors' generator). Run: ``python bench/cfg_sample.py [--grammar cfg3f] [--n 4000]``.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


from tasks.cfg import load_builtin, sample


def recursive_sample(g, rng):
    """One string with labels by plain recursion (the peer)."""
    tokens, s, p, b = [], [], [], []
    counters = [0] * g.depth

    def expand(lvl, sym, path_s, path_p):
        if lvl == g.depth:
            tokens.append(sym)
            s.append(list(path_s))
            p.append(list(path_p))
            return
        here_p = counters[lvl]
        counters[lvl] += 1
        rules = g.rules[lvl][sym]
        for c in rules[rng.randrange(len(rules))]:
            expand(lvl + 1, c, path_s + [sym], path_p + [here_p])

    expand(0, 0, [], [])
    for i in range(len(tokens)):
        b.append([i + 1 == len(tokens) or p[i][l] != p[i + 1][l] for l in range(g.depth)])
    return tokens, s, p, b


def main() -> None:
    import random

    ap = argparse.ArgumentParser()
    ap.add_argument("--grammar", default="cfg3f")
    ap.add_argument("--n", type=int, default=4000)
    args = ap.parse_args()
    g = load_builtin(args.grammar)
    sample(g, 10, seed=0)
    rates = []
    for seed in range(3):
        t0 = time.perf_counter()
        batch = sample(g, args.n, seed=seed)
        _ = batch.b_sharp
        rates.append(len(batch.tokens) / (time.perf_counter() - t0))
    ours = max(rates)
    rng = random.Random(0)
    t0, n_tok = time.perf_counter(), 0
    while time.perf_counter() - t0 < 2.0:
        n_tok += len(recursive_sample(g, rng)[0])
    peer = n_tok / (time.perf_counter() - t0)
    print(f"grammar {args.grammar}, batch of {args.n} strings, one core")
    print(f"{'measure':<48}{'ours':>14}{'peer':>14}{'ratio':>9}")
    print(f"{'P3 annotated tokens/s (peer: recursive Python)':<48}{ours:>14,.0f}{peer:>14,.0f}{ours / peer:>8.0f}x")
    print("target: P3 >= 1,000,000 annotated tokens/s")


if __name__ == "__main__":
    main()
