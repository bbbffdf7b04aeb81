"""attention_boundary: Ā and B agree with a brute-force recomputation, a head forced to read back the previous
NT-end shows up as large B NT-end → NT-end, uni's Ā is its analytic window profile, bad input is refused."""
import json

import numpy as np
import pytest
import torch

import analyses
from analyses.attention_boundary import PAIR_KINDS
from plm_interp import HookedPLM, preset_config
from plm_interp.model.positional.uniform import window_sizes
from tasks.cfg import CFGTask

N, LEVEL = 6, 2          # strings; the NT level the forced head reads back (demo has levels 0..3)
HOOK = "blocks.0.attn.hook_pattern"


def _model(task, **kw):
    fields = dict(d_vocab=task.d_vocab, n_ctx=96, positional="rot", seed=0, task=task.spec())
    fields.update(kw)
    return HookedPLM(preset_config("tiny", **fields)).eval()


def _forced_hook(samples, level):
    """Head 0: every level-``level`` NT-end attends only to the previous level-``level`` NT-end (BOS if none);
    every other query attends to itself."""
    ends = samples.b[..., level]
    n, T = ends.shape
    forced = torch.zeros(n, T, T)
    for b in range(n):
        last = 0
        for j in range(T):
            forced[b, j, last if bool(ends[b, j]) else j] = 1.0
            if bool(ends[b, j]):
                last = j

    def hook(pattern, hook):
        pattern = pattern.clone()
        pattern[:, 0] = forced[:, : pattern.shape[-2], : pattern.shape[-1]]
        return pattern

    return hook


def _forced_hook_any(model, draws, level):
    """:func:`_forced_hook` for whichever of ``draws`` is running (told apart by its tokens, seen by a wrapper
    of ``model.forward``). Returns (hook, undo)."""
    table = {tuple(d.tokens[0].tolist()[:20]): _forced_hook(d, level) for d in draws}
    seen, orig = {}, model.forward

    def forward(tokens, *a, **k):
        seen["t"] = tokens
        return orig(tokens, *a, **k)

    model.forward = forward
    hook = lambda pattern, hook: table[tuple(seen["t"][0].tolist()[:20])](pattern, hook)
    return hook, lambda: model.__dict__.pop("forward")


def _brute_force(patterns, samples, levels, max_offset, max_rank):
    """Ā, mean B per pair kind and the adjacency curve by explicit loops over (string, query, key)."""
    A = np.stack([p.numpy() for p in patterns], 1)                  # [b, layer, head, q, k]
    term, ends = samples.terminal_mask.numpy(), samples.b.numpy()
    n, L, H, T, _ = A.shape
    bias_sum, bias_cnt = np.zeros((L, H, max_offset + 1)), np.zeros(max_offset + 1)
    for b in range(n):
        for j in range(T):
            if term[b, j]:
                for i in range(max(0, j - max_offset), j + 1):
                    bias_sum[..., j - i] += A[b, :, :, j, i]
                    bias_cnt[j - i] += 1
    bias = bias_sum / np.where(bias_cnt > 0, bias_cnt, np.nan)
    pair = {(lv, k): [] for lv in levels for k in PAIR_KINDS}
    adj = {(lv, r): [] for lv in levels for r in range(1, max_rank + 1)}
    for b in range(n):
        for j in range(T):
            if not term[b, j]:
                continue
            for lv in levels:
                prev_ends = [i for i in range(j - 1, -1, -1) if term[b, i] and ends[b, i, lv]]
                for i in range(max(0, j - max_offset), j):
                    if not term[b, i]:
                        continue
                    B = A[b, :, :, j, i] - bias[..., j - i]
                    kind = ("end" if ends[b, j, lv] else "other") + "->" + ("end" if ends[b, i, lv] else "other")
                    pair[(lv, kind)].append(B)
                    if ends[b, j, lv] and ends[b, i, lv]:
                        r = prev_ends.index(i) + 1
                        if r <= max_rank:
                            adj[(lv, r)].append(B)
    mean = lambda xs: np.mean(xs, 0) if xs else np.full((L, H), np.nan)
    pair_mean = np.stack([np.stack([mean(pair[(lv, k)]) for k in PAIR_KINDS], -1) for lv in levels], -2)
    adj_mean = np.stack([np.stack([mean(adj[(lv, r)]) for r in range(1, max_rank + 1)], -1) for lv in levels], -2)
    return bias, pair_mean, adj_mean


def _brute_force_cross(patterns, samples, levels, max_offset, max_rank, bias):
    """B_{l->l'}(r) with b and with b# (b#(t) = the shallowest analysed level ending at t) by explicit loops;
    r = number of level-l' NT-ends among the terminals in [i, j)."""
    A = np.stack([p.numpy() for p in patterns], 1)
    term, ends = samples.terminal_mask.numpy(), samples.b.numpy()
    n, L, H, T, _ = A.shape
    nl = len(levels)
    acc = {(v, q, k, r): [] for v in range(2) for q in range(nl) for k in range(nl) for r in range(1, max_rank + 1)}
    sharp = lambda b, t: next((x for x, lv in enumerate(levels) if ends[b, t, lv]), -1)
    for b in range(n):
        for j in range(T):
            if not term[b, j]:
                continue
            for i in range(max(0, j - max_offset), j):
                if not term[b, i]:
                    continue
                B = A[b, :, :, j, i] - bias[..., j - i]
                for q, lq in enumerate(levels):
                    for k, lk in enumerate(levels):
                        r = sum(1 for t in range(i, j) if term[b, t] and ends[b, t, lk])
                        if not 1 <= r <= max_rank:
                            continue
                        if ends[b, j, lq] and ends[b, i, lk]:
                            acc[(0, q, k, r)].append(B)
                        if sharp(b, j) == q and sharp(b, i) == k:
                            acc[(1, q, k, r)].append(B)
    mean = lambda xs: np.mean(xs, 0) if xs else np.full((L, H), np.nan)
    return [np.stack([np.stack([np.stack([mean(acc[(v, q, k, r)]) for r in range(1, max_rank + 1)], -1)
                                for k in range(nl)], -2) for q in range(nl)], -3) for v in range(2)]


def test_forced_previous_nt_end_head_matches_brute_force():
    task = CFGTask("demo")
    model = _model(task)
    samples = task.sample(N, seed=0)
    max_offset, max_rank = 40, 4
    with model.hooks(fwd_hooks=[(HOOK, _forced_hook(samples, LEVEL))]):
        r = analyses.attention_boundary(model, n=N, seed=0, max_offset=max_offset, max_rank=max_rank,
                                        batch_size=N, seeds=1, progress=False)
        _, cache = model.run_with_cache(samples.tokens, names_filter=lambda k: k.endswith("hook_pattern"))
    patterns = [cache[f"blocks.{l}.attn.hook_pattern"] for l in range(model.cfg.n_layers)]
    assert torch.equal(patterns[0][:, 0].amax(-1), torch.ones_like(patterns[0][:, 0, :, 0]))  # the hook took
    bias, pair_mean, adj_mean = _brute_force(patterns, samples, r.levels, max_offset, max_rank)
    np.testing.assert_allclose(r.position_bias.numpy(), bias, atol=1e-5)
    np.testing.assert_allclose(r.pair_mean.numpy(), pair_mean, atol=1e-5)
    np.testing.assert_allclose(r.adjacent.numpy(), adj_mean, atol=1e-5)
    cross, sharp = _brute_force_cross(patterns, samples, r.levels, max_offset, max_rank, bias)
    np.testing.assert_allclose(r.adjacent_cross.numpy(), cross, atol=1e-5)
    np.testing.assert_allclose(r.adjacent_sharp.numpy(), sharp, atol=1e-5)

    li = r.levels.index(LEVEL)
    head = r.pair_mean[0, 0, li]
    assert head[0] > 0.1 and head[0] > 3 * head[1:].abs().max()          # end->end stands out
    assert r.adjacent[0, 0, li, 0] > 0.5                                 # the nearest NT-end, r = 1
    assert (r.adjacent[0, 0, li, 1:].nan_to_num().abs() < 0.1).all()     # ... and only the nearest
    # the kinds are compared on the same head: the forced head is the best end->end head and its three other
    # kinds are read from that head, not from whichever head maximises each
    sh = r.same_head(LEVEL)
    assert (sh["layer"], sh["head"]) == (0, 0)
    assert [sh[k] for k in PAIR_KINDS] == pytest.approx(r.pair_mean[0, 0, li].tolist())


def test_seed_spread_sums_to_the_pooled_figure():
    """``seeds`` independent draws: their per-seed B, weighted by pair counts, recombine into the pooled B only if
    the draws are disjoint slices of the data; and a headline carries the seed range around the figure."""
    task = CFGTask("demo")
    model = _model(task)
    hook, undo = _forced_hook_any(model, [task.sample(3, seed=k) for k in range(3)], LEVEL)
    try:
        with model.hooks(fwd_hooks=[(HOOK, hook)]):
            r = analyses.attention_boundary(model, n=9, seed=0, max_offset=40, max_rank=4, seeds=3, progress=False)
            singles = [analyses.attention_boundary(model, n=3, seed=k, max_offset=40, max_rank=4, seeds=1,
                                                   progress=False) for k in range(3)]
    finally:
        undo()
    for k in range(3):  # seed k's figure is exactly the one-seed run on task.sample(3, seed=k)
        np.testing.assert_allclose(r.pair_mean_seeds[k].numpy(), singles[k].pair_mean.numpy(), atol=1e-6)
    h = r.headlines()[0]
    assert h["metric"].startswith("B end->end L0H0") and len(h["seeds"]) == 3
    assert h["lo"] == min(h["seeds"]) and h["hi"] == max(h["seeds"])
    assert "exceeds every other kind on this head at every seed" in h["verdict"]


def test_uni_position_bias_is_the_analytic_window_profile():
    task = CFGTask("demo")
    model = _model(task, positional="uni", n_heads=4)
    r = analyses.attention_boundary(model, n=N, seed=1, max_offset=30, batch_size=4, seeds=1, progress=False)
    lengths = task.sample(N, seed=1).lengths.tolist()
    windows = window_sizes(4, model.cfg.uni_window_rule)
    for p in range(31):
        queries = [j for L in lengths for j in range(1, L + 1) if j >= p]   # terminal positions j, key j - p >= 0
        for h, w in enumerate(windows):
            expect = np.mean([(1.0 / min(w, j + 1)) if p < w else 0.0 for j in queries])
            for layer in range(model.cfg.n_layers):
                assert r.position_bias[layer, h, p].item() == pytest.approx(expect, abs=1e-5), (layer, h, p)


def test_result_views_and_json(tmp_path):
    task = CFGTask("demo")
    r = analyses.attention_boundary(_model(task), n=4, max_offset=20, progress=False)
    rows = r.rows()
    assert len(rows) == 2 * len(r.levels) and "B end->end" in rows[0]
    assert r.b_mean("end->end").shape == (2, 2)
    r.save(tmp_path)
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["analysis"] == "AttentionBoundaryResult" and (tmp_path / "plot.png").stat().st_size > 0
    assert "attention_boundary" in analyses.names()


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n = 0"),
    (dict(levels=[7]), "levels"),
    (dict(max_offset=0), "max_offset"),
    (dict(max_rank=0), "max_rank"),
])
def test_bad_options_are_refused(kwargs, match):
    task = CFGTask("demo")
    with pytest.raises(ValueError, match=match):
        analyses.attention_boundary(_model(task), progress=False, **kwargs)


def test_vocabulary_mismatch_is_refused():
    task = CFGTask("demo")
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab - 1, n_ctx=96, seed=0))
    with pytest.raises(ValueError, match="vocabulary"):
        analyses.attention_boundary(model, task, n=2, progress=False)
