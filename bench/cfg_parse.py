"""Benchmark P1 (membership throughput, ours vs NLTK's ChartParser) and P2 (exact next-token table time).

Run: ``python bench/cfg_parse.py [--n 2000] [--nltk 3] [--grammar cfg3f]``. Prints one table; NLTK is timed on
the first few strings only (it takes seconds per string).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


from tasks.cfg import accepts, load_builtin, next_token_logprobs, sample


def nltk_grammar(g):
    import nltk

    lines = []
    for lvl, syms in enumerate(g.rules):
        last = lvl == g.depth - 1
        for a, rules in enumerate(syms):
            alts = [" ".join((f"'{g.names[lvl + 1][c]}'" if last else g.names[lvl + 1][c]) for c in r) for r in rules]
            lines.append(f"{g.names[lvl][a]} -> {' | '.join(alts)}")
    return nltk.CFG.fromstring("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grammar", default="cfg3f")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--nltk", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    g = load_builtin(args.grammar)
    batch = sample(g, args.n, seed=args.seed)
    strings = batch.strings()
    mean_len = batch.lengths.mean()

    accepts(g, strings[:50])                                    # warm-up
    best = min(_timed(lambda: accepts(g, strings)) for _ in range(3))
    ours = args.n / best

    import nltk

    parser = nltk.ChartParser(nltk_grammar(g))
    names = [[g.terminals[t] for t in s] for s in strings[: args.nltk]]
    t0 = time.perf_counter()
    nltk_ok = [next(iter(parser.parse(w)), None) is not None for w in names]
    nltk_rate = len(names) / (time.perf_counter() - t0)
    assert all(nltk_ok) and accepts(g, strings[: args.nltk]).all()

    one = min(_timed(lambda: next_token_logprobs(g, [strings[0]])) for _ in range(5))
    sub = strings[:200]
    batched = min(_timed(lambda: next_token_logprobs(g, sub)) for _ in range(2)) / len(sub)

    print(f"grammar {args.grammar}: {args.n} strings, mean length {mean_len:.1f} tokens, 1 process / 1 thread")
    print(f"{'measure':<52}{'ours':>14}{'peer':>16}{'ratio':>10}")
    print(f"{'P1 membership, strings/s (peer: NLTK ChartParser)':<52}{ours:>14.0f}{nltk_rate:>16.3f}"
          f"{ours / nltk_rate:>9.0f}x")
    print(f"{'P2 next-token table, ms/string, single string':<52}{one * 1e3:>14.2f}{'':>16}")
    print(f"{'P2 next-token table, ms/string, batch of 200':<52}{batched * 1e3:>14.2f}{'':>16}")
    print("targets: P1 >= 1000 strings/s and >= 100x NLTK; P2 <= 20 ms/string")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
