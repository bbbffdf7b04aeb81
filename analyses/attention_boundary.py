"""Attention to NT boundaries (Part 1, Result 7): does attention "read back the nearest left boundary"?

Raw attention A is dominated by position: most heads look a fixed distance back. The paper removes that bias
first. With j a query position and i ≤ j a key position (offset p = j − i):

* position-bias profile ``Ā[layer, head, p]`` = mean of ``A[j → j − p]`` over the terminal queries j of real
  strings (keys may be BOS; PAD queries never count);
* ``B[j → i] = A[j → i] − Ā[j − i]``: what is left once position is accounted for.

Statistics of B (keys restricted to terminals strictly before the query, 0 < p ≤ ``max_offset``), per NT level
l (``b[., l]`` = "a level-l subtree ends here"):

* ``pair_mean[layer, head, level, kind]`` for kind in :data:`PAIR_KINDS` — NT-end → NT-end, NT-end → other,
  other → NT-end, other → other. The paper's point: B is highest NT-end → NT-end.
* ``adjacent_cross[layer, head, l, l', r-1]`` — the paper's B_{l->l'}(r): mean B from a level-l NT-end j to the
  r-th most recent level-l' NT-end i before it (r = number of level-l' NT-ends in [i, j), so r = 1 is the
  nearest); ``adjacent[..., l, r-1]`` is its diagonal l = l'. The paper finds it largest at r = 1.
* ``adjacent_sharp`` — the same with b# in place of b: j and i are counted only at the level of the largest
  subtree ending there (b#(i) = the shallowest level l with b_l(i) = 1; since subtrees nest, a level-l end is
  also an end of every deeper level, so b# is the informative one), r still counted in level-l' NT-ends.

Per head and averaged: every statistic is kept per (layer, head). The comparison the paper makes — is B
NT-end → NT-end larger than the other pair kinds — is made on the *same* head (``same_head``): the head with the
largest end->end B, and all four kinds there. The data are drawn as ``seeds`` independent samples (seeds
``seed``, ``seed + 1``, ...), and ``pair_mean_seeds`` keeps each one's B so headline figures carry a seed spread.

Means of B are computed without a second pass: ``mean B = (Σ A − Σ_p count[p] · Ā[p]) / Σ_p count[p]``, so each
batch's patterns are reduced to sums and offset histograms and then dropped (never the whole dataset at once).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Float, Int

from analyses._task import resolve_task
from analyses.registry import register
from analyses.result import AnalysisResult, headline

PAIR_KINDS = ("end->end", "end->other", "other->end", "other->other")


@dataclass
class AttentionBoundaryResult(AnalysisResult):
    """Position bias Ā per layer/head/offset, and bias-removed attention B per NT-boundary pair kind and level."""
    grammar: str
    levels: list[int]
    max_offset: int
    max_rank: int
    #: Ā: mean attention at offset p from terminal queries (NaN where no pair had that offset)
    position_bias: Float[torch.Tensor, "layer head offset"]
    #: mean B per pair kind (:data:`PAIR_KINDS`) and NT level (index into ``levels``)
    pair_mean: Float[torch.Tensor, "layer head level kind"]
    pair_count: Int[torch.Tensor, "level kind"]
    #: mean B from a level-l NT-end to the r-th most recent level-l NT-end (r = 1..max_rank)
    adjacent: Float[torch.Tensor, "layer head level rank"]
    adjacent_count: Int[torch.Tensor, "level rank"]
    #: B_{l->l'}(r) with b (query level, key level) and with b#
    adjacent_cross: Float[torch.Tensor, "layer head qlevel klevel rank"] | None = None
    adjacent_sharp: Float[torch.Tensor, "layer head qlevel klevel rank"] | None = None
    #: mean B per pair kind, per independent sample (seed)
    pair_mean_seeds: Float[torch.Tensor, "seed layer head level kind"] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def same_head(self, level: int | None = None) -> dict[str, Any]:
        """The head with the largest end->end B at ``level`` and every pair kind's B on that same head (with the
        per-seed values)."""
        li = self.levels.index(self.levels[-1] if level is None else level)
        ee = torch.nan_to_num(self.pair_mean[:, :, li, 0], nan=-1e9)
        layer, head = divmod(int(ee.argmax()), ee.shape[1])
        out = {"layer": layer, "head": head, "level": self.levels[li]}
        for k, kind in enumerate(PAIR_KINDS):
            out[kind] = _f(self.pair_mean[layer, head, li, k])
            if self.pair_mean_seeds is not None:
                out[f"{kind} seeds"] = [_f(x) for x in self.pair_mean_seeds[:, layer, head, li, k]]
        return out

    def headlines(self) -> list[dict[str, Any]]:
        """At the deepest level: the best end->end head's four pair kinds (same head), each with its seed spread;
        the end->end figure's control is the largest other kind on that head."""
        if self.pair_mean_seeds is None or self.pair_mean_seeds.shape[0] < 3:
            return []
        sh = self.same_head()
        where = f"L{sh['layer']}H{sh['head']} NT{sh['level'] + 1}"
        others = {k: sh[k] for k in PAIR_KINDS[1:] if sh[k] is not None}
        rival = max(others, key=others.get) if others else None
        ee_seeds = sh["end->end seeds"]
        margin = [e - max(sh[f"{k} seeds"][i] for k in others) for i, e in enumerate(ee_seeds)] if others else []
        words = ("end->end exceeds every other kind on this head at every seed" if margin and min(margin) > 0
                 else "end->end does NOT exceed every other kind on this head at every seed")
        out = [headline(f"B end->end {where}", sh["end->end"], int(self.pair_count[-1, 0]),
                        sh[rival] if rival else None, seeds=ee_seeds, percent=False, verdict_text=words,
                        control_name=f"{rival}, same head" if rival else "none")]
        for k in PAIR_KINDS[1:]:
            out.append(headline(f"B {k} {where}", sh[k], int(self.pair_count[-1, PAIR_KINDS.index(k)]),
                                seeds=sh[f"{k} seeds"], percent=False, verdict_text="(comparison kind)"))
        return out

    def b_mean(self, kind: str = "end->end", level: int | None = None) -> Float[torch.Tensor, "layer head"]:
        """Mean B of one pair kind at one NT level (default the deepest analysed) per layer and head."""
        level = self.levels[-1] if level is None else level
        return self.pair_mean[:, :, self.levels.index(level), PAIR_KINDS.index(kind)]

    def rows(self) -> list[dict[str, Any]]:
        """One row per (layer, level): each pair kind's B averaged over heads, the best head's end->end B and
        the first points of the adjacency curve (averaged over heads)."""
        out = []
        n_layers = self.pair_mean.shape[0]
        for layer in range(n_layers):
            for li, level in enumerate(self.levels):
                row: dict[str, Any] = {"layer": layer, "level": f"NT{level + 1}"}
                for k, kind in enumerate(PAIR_KINDS):
                    row[f"B {kind}"] = _f(self.pair_mean[layer, :, li, k].mean())
                best = int(torch.nan_to_num(self.pair_mean[layer, :, li, 0], nan=-1e9).argmax())
                row["best end->end head"] = best
                for k, kind in enumerate(PAIR_KINDS):  # the four kinds on that same head
                    row[f"B {kind} @best head"] = _f(self.pair_mean[layer, best, li, k])
                for r in range(min(3, self.max_rank)):
                    row[f"B adj r={r + 1}"] = _f(self.adjacent[layer, :, li, r].mean())
                if self.adjacent_sharp is not None:
                    row["B# adj r=1"] = _f(self.adjacent_sharp[layer, :, li, li, 0].mean())
                out.append(row)
        return out

    def cross_rows(self) -> list[dict[str, Any]]:
        """B_{l->l'}(r) (averaged over layers and heads) per (query level, key level, r), with b and b#."""
        if self.adjacent_cross is None:
            return []
        out = []
        for qi, lq in enumerate(self.levels):
            for ki, lk in enumerate(self.levels):
                row = {"query level": f"NT{lq + 1}", "key level": f"NT{lk + 1}"}
                for r in range(min(3, self.max_rank)):
                    row[f"B r={r + 1}"] = _f(self.adjacent_cross[:, :, qi, ki, r].mean())
                    row[f"B# r={r + 1}"] = _f(self.adjacent_sharp[:, :, qi, ki, r].mean())
                out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return _scrub(super().to_dict())

    def plot(self):
        """Heatmaps of mean B NT-end → NT-end ``[layer, head]`` per level, the adjacency curve, and Ā."""
        import matplotlib.pyplot as plt

        from analyses.result import draw_headlines

        n_lv = len(self.levels)
        heads = self.headlines()
        fig, axes = plt.subplots(1, n_lv + 2 + bool(heads), figsize=(3.2 * (n_lv + 2 + bool(heads)), 3.2))
        vmax = float(torch.nan_to_num(self.pair_mean[..., 0].abs()).max()) or 1.0
        for ax, li, level in zip(axes, range(n_lv), self.levels):
            im = ax.imshow(self.pair_mean[:, :, li, 0].numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
            ax.set_title(f"B end->end, NT{level + 1}")
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
        fig.colorbar(im, ax=axes[n_lv - 1], fraction=0.046)
        ax = axes[n_lv]
        r = torch.arange(1, self.max_rank + 1)
        for li, level in enumerate(self.levels):
            ax.plot(r, self.adjacent[:, :, li].mean((0, 1)).numpy(), marker="o", label=f"NT{level + 1}")
        ax.set_xlabel("r (r-th most recent NT-end)")
        ax.set_ylabel("mean B (all layers, heads)")
        ax.set_title("most adjacent NT-end")
        ax.legend(fontsize=7)
        ax = axes[n_lv + 1]
        prof = self.position_bias.flatten(0, 1)
        ax.imshow(prof[:, : min(prof.shape[1], 64)].numpy(), aspect="auto", cmap="viridis")
        ax.set_title("Ā (rows: layer·head)")
        ax.set_xlabel("offset p = j − i")
        if heads:
            draw_headlines(axes[-1], heads)
            axes[-1].set_title("same head: four pair kinds (seed range)")
        fig.suptitle(f"attention to NT boundaries, {self.grammar}")
        fig.tight_layout()
        return fig


@register("attention_boundary")
def attention_boundary(
    model,
    task=None,
    n: int = 256,
    seed: int = 0,
    max_offset: int | None = None,
    max_rank: int = 8,
    levels: list[int] | None = None,
    batch_size: int = 16,
    seeds: int = 3,
    progress: bool = True,
) -> AttentionBoundaryResult:
    """Position bias Ā, B = A − Ā, B by NT-end pair kind and level, and the most-adjacent-NT-end curve.

    Args:
        n: fresh strings, processed ``batch_size`` at a time: ``seeds`` independent draws (``task.sample(n //
            seeds, seed + k)``, the first taking the remainder) whose sums are kept apart for the seed spread.
        max_offset: longest query→key distance analysed (default: the context, ``n_ctx − 1``).
        max_rank: length of the adjacency curve (r = 1..max_rank).
        levels: NT levels (0 = root); default ``1..depth-1`` like :func:`analyses.nt_probe`.
    """
    task = resolve_task(model, task, kind="cfg")
    for name, v, lo in (("n", n, 1), ("max_rank", max_rank, 1), ("batch_size", batch_size, 1), ("seeds", seeds, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} = {v!r} must be an int >= {lo}")
    max_offset = model.cfg.n_ctx - 1 if max_offset is None else max_offset
    if not isinstance(max_offset, int) or max_offset < 1:
        raise ValueError(f"max_offset = {max_offset!r} must be an int >= 1")
    if seeds > n:
        raise ValueError(f"seeds = {seeds} must be <= n = {n} (each seed draws n // seeds strings)")
    sizes = [n // seeds + (n % seeds if k == 0 else 0) for k in range(seeds)]
    draws = [task.sample(m, seed=seed + k) for k, m in enumerate(sizes)]
    depth = draws[0].s.shape[-1]
    levels = list(range(1, depth)) if levels is None else list(levels)
    if not levels or any(not 0 <= l < depth for l in levels):
        raise ValueError(f"levels = {levels} must be a non-empty list of NT levels in 0..{depth - 1} (0 = root)")
    longest = max(d.tokens.shape[1] for d in draws)
    if longest > model.cfg.n_ctx:
        raise ValueError(f"strings of up to {longest} tokens exceed the model's n_ctx = {model.cfg.n_ctx}")

    accs = [_Accumulator(model.cfg.n_layers, model.cfg.n_heads, len(levels), max_offset, max_rank) for _ in draws]
    jobs = [(k, s) for k, d in enumerate(draws) for s in range(0, len(d.tokens), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="attention_boundary", unit="batch")
    names = {f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)}
    device = model.W_E.device
    for k, s in jobs:
        samples = draws[k]
        rows = slice(s, min(s + batch_size, len(samples.tokens)))
        width = int(samples.lengths[rows].max()) + 2
        tokens = samples.tokens[rows, :width].to(device)
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=lambda k: k in names)
        patterns = [cache[f"blocks.{l}.attn.hook_pattern"] for l in range(model.cfg.n_layers)]
        accs[k].add(patterns, samples.terminal_mask[rows, :width], samples.b[rows, :width][..., levels])
        del cache, patterns
    total = _Accumulator.sum(accs)
    settings = {"n": n, "seed": seed, "seeds": seeds, "batch_size": batch_size}
    out = total.result(task.grammar.name, levels, settings=settings)
    out.pair_mean_seeds = torch.stack([a.result(task.grammar.name, levels, settings).pair_mean for a in accs])
    return out


class _Accumulator:
    """Per-batch reduction of attention patterns to sums of A and offset histograms (float64, CPU)."""

    def __init__(self, n_layers: int, n_heads: int, n_levels: int, max_offset: int, max_rank: int):
        self.P, self.R, self.L = max_offset + 1, max_rank, n_levels
        f64 = dict(dtype=torch.float64)
        self.bias_sum = torch.zeros(n_layers, n_heads, self.P, **f64)
        self.bias_cnt = torch.zeros(self.P, **f64)
        self.pair_sum = torch.zeros(n_layers, n_heads, n_levels, 4, **f64)
        self.pair_hist = torch.zeros(n_levels, 4, self.P, **f64)
        self.adj_sum = torch.zeros(n_layers, n_heads, n_levels, max_rank, **f64)
        self.adj_hist = torch.zeros(n_levels, max_rank, self.P, **f64)
        # B_{l->l'}(r): with b (index 0) and with b# (index 1)
        self.x_sum = torch.zeros(2, n_layers, n_heads, n_levels, n_levels, max_rank, **f64)
        self.x_hist = torch.zeros(2, n_levels, n_levels, max_rank, self.P, **f64)

    @staticmethod
    def sum(accs: list["_Accumulator"]) -> "_Accumulator":
        """The accumulator of all the data (every field is a sum)."""
        out = _Accumulator.__new__(_Accumulator)
        out.P, out.R, out.L = accs[0].P, accs[0].R, accs[0].L
        for k in ("bias_sum", "bias_cnt", "pair_sum", "pair_hist", "adj_sum", "adj_hist", "x_sum", "x_hist"):
            setattr(out, k, sum(getattr(a, k) for a in accs))
        return out

    def add(self, patterns: list[Float[torch.Tensor, "batch head q k"]], term: Bool[torch.Tensor, "batch pos"],
            ends: Bool[torch.Tensor, "batch pos level"]) -> None:
        T = term.shape[1]
        pos = torch.arange(T)
        offset = (pos[:, None] - pos[None, :]).expand(term.shape[0], T, T)  # [b, q, k]
        in_range = (offset >= 0) & (offset < self.P)
        bias_sel = term[:, :, None] & in_range                       # terminal queries, keys i <= j
        pair_sel = bias_sel & term[:, None, :] & (offset > 0)          # terminal keys strictly before
        d_bias, d_pair = offset[bias_sel], offset[pair_sel]
        self.bias_cnt += torch.bincount(d_bias, minlength=self.P).double()
        kinds, ranks = [], []
        for lv in range(self.L):
            e = ends[..., lv]
            kind = (2 * (~e)[:, :, None] + (~e)[:, None, :]).long()   # 0 end->end ... 3 other->other
            c = e.long().cumsum(1)
            rank = c[:, :, None] - c[:, None, :]                       # r for end->end pairs (>= 1)
            k_pair = kind[pair_sel]
            self.pair_hist[lv] += torch.bincount(k_pair * self.P + d_pair, minlength=4 * self.P).view(4, self.P).double()
            r_pair = rank[pair_sel]
            adj = (k_pair == 0) & (r_pair <= self.R)
            self.adj_hist[lv] += torch.bincount((r_pair[adj] - 1) * self.P + d_pair[adj],
                                                minlength=self.R * self.P).view(self.R, self.P).double()
            kinds.append(k_pair)
            ranks.append((adj, r_pair[adj] - 1))
        # B_{l->l'}(r): query a level-lq end (b, or b# = lq), key a level-lk end (b, or b# = lk), r = number of
        # level-lk ends in [i, j); b# = the shallowest analysed level ending there (ends nest, see the docstring)
        first = torch.where(ends.any(-1), ends.long().argmax(-1), torch.full(term.shape, -1))
        cross = []
        for lk in range(self.L):
            e = ends[..., lk]
            c = e.long().cumsum(1)
            r_all = (c[:, :, None] - c[:, None, :] + 1 - e.long()[:, :, None])[pair_sel]   # [pairs]
            key_b, key_s = e[:, None, :].expand_as(pair_sel)[pair_sel], (first == lk)[:, None, :].expand_as(pair_sel)[pair_sel]
            for lq in range(self.L):
                q_b = ends[..., lq][:, :, None].expand_as(pair_sel)[pair_sel]
                q_s = (first == lq)[:, :, None].expand_as(pair_sel)[pair_sel]
                for v, sel in enumerate((q_b & key_b, q_s & key_s)):
                    sel = sel & (r_all >= 1) & (r_all <= self.R)
                    r_idx = r_all[sel] - 1
                    self.x_hist[v, lq, lk] += torch.bincount(r_idx * self.P + d_pair[sel],
                                                             minlength=self.R * self.P).view(self.R, self.P).double()
                    cross.append((v, lq, lk, sel, r_idx))
        for layer, A in enumerate(patterns):
            A = A.detach().to("cpu", torch.float64).transpose(0, 1)    # [head, b, q, k]
            self.bias_sum[layer].index_add_(1, d_bias, A[:, bias_sel])
            a_pair = A[:, pair_sel]                                    # [head, n_pairs]
            for lv in range(self.L):
                self.pair_sum[layer, :, lv].index_add_(1, kinds[lv], a_pair)
                adj, r_idx = ranks[lv]
                self.adj_sum[layer, :, lv].index_add_(1, r_idx, a_pair[:, adj])
            for v, lq, lk, sel, r_idx in cross:
                self.x_sum[v, layer, :, lq, lk].index_add_(1, r_idx, a_pair[:, sel])

    def result(self, grammar: str, levels: list[int], settings: dict[str, Any]) -> AttentionBoundaryResult:
        bias = self.bias_sum / self.bias_cnt                           # NaN at offsets never seen
        safe = torch.nan_to_num(bias)
        expected_pair = torch.einsum("lhp,vkp->lhvk", safe, self.pair_hist)
        expected_adj = torch.einsum("lhp,vrp->lhvr", safe, self.adj_hist)
        expected_x = torch.einsum("lhp,aqkrp->alhqkr", safe, self.x_hist)
        cross = ((self.x_sum - expected_x) / self.x_hist.sum(-1)[:, None, None]).float()
        n_pair, n_adj = self.pair_hist.sum(-1), self.adj_hist.sum(-1)
        return AttentionBoundaryResult(
            grammar=grammar, levels=levels, max_offset=self.P - 1, max_rank=self.R,
            position_bias=bias.float(),
            pair_mean=((self.pair_sum - expected_pair) / n_pair).float(),
            pair_count=n_pair.long(),
            adjacent=((self.adj_sum - expected_adj) / n_adj).float(),
            adjacent_count=n_adj.long(), adjacent_cross=cross[0], adjacent_sharp=cross[1],
            settings={**settings, "max_offset": self.P - 1, "max_rank": self.R})


def _f(x: torch.Tensor) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _scrub(x: Any) -> Any:
    """NaN (an empty average) → None, so result.json is valid JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _scrub(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_scrub(v) for v in x]
    return x
