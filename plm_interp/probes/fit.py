"""Train and score many probes at once on activations streamed from a frozen model.

The training set is visited in chunks: a chunk's activations are computed (no grad), every probe takes
mini-batch steps on it, then the chunk is dropped. All probes share each forward pass of the model. When the
whole set's activations fit in ``cache_bytes`` they are computed once and reused every epoch (a probe takes
hundreds of epochs over a small set, and re-running the model each time dominated the cost on long strings);
otherwise memory is bounded by the chunk, not the dataset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Int
from tqdm.auto import tqdm

from plm_interp.probes.activations import residual


@dataclass
class ProbeFit:
    """One probe and its targets. ``labels[n, pos]`` holds class ids, -1 where nothing is predicted."""

    probe: torch.nn.Module
    labels: Int[torch.Tensor, "n pos"]
    losses: list[float] = field(default_factory=list)


def fit_probes(
    model,
    layer: int,
    tokens: Int[torch.Tensor, "n pos"],
    valid: Bool[torch.Tensor, "n pos"],
    fits: dict[str, ProbeFit],
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 60,
    chunk_size: int = 1024,
    weight_decay: float = 0.0,
    seed: int = 0,
    progress: bool = True,
    desc: str = "probe",
    cache_bytes: int = 2**30,
) -> dict[str, ProbeFit]:
    """Fit every probe in ``fits`` for ``steps`` AdamW steps on the activations of ``tokens`` at ``layer``."""
    if tokens.shape[0] == 0:
        raise ValueError("the probe training set is empty")
    if steps < 1 or batch_size < 1 or chunk_size < 1:
        raise ValueError(f"steps={steps}, batch_size={batch_size}, chunk_size={chunk_size} must all be >= 1")
    params = [p for f in fits.values() for p in f.probe.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n = tokens.shape[0]
    chunk_size = min(chunk_size, n)
    cache = None
    if n * tokens.shape[1] * model.cfg.d_model * 4 <= cache_bytes:
        cache = torch.cat([residual(model, tokens[c: c + chunk_size], layer).float() for c in range(0, n, chunk_size)])
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False)
    step = 0
    while step < steps:
        order = torch.randperm(n, generator=gen)
        for c in range(0, n, chunk_size):
            rows = order[c: c + chunk_size]
            acts = cache[rows] if cache is not None else residual(model, tokens[rows], layer).float()
            for _ in range(max(1, math.ceil(len(rows) / batch_size))):
                idx = torch.randint(0, len(rows), (min(batch_size, len(rows)),), generator=gen)
                loss = sum(_loss(f, acts[idx], valid[rows][idx], f.labels[rows][idx]) for f in fits.values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                bar.update(1)
                if step >= steps:
                    break
            if step >= steps:
                break
    bar.close()
    return fits


def _loss(fit: ProbeFit, acts, valid, labels) -> torch.Tensor:
    logits = fit.probe(acts, valid)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-1)
    fit.losses.append(float(loss.detach()))
    return loss


@torch.no_grad()
def predict(model, layer: int, tokens, valid, probes: dict[str, torch.nn.Module], batch_size: int = 256
            ) -> dict[str, torch.Tensor]:
    """Predicted classes ``[n, pos]`` of each probe, streaming the activations."""
    out: dict[str, list[torch.Tensor]] = {k: [] for k in probes}
    for start in range(0, tokens.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        acts = residual(model, tokens[sl], layer).float()
        for name, probe in probes.items():
            out[name].append(probe(acts, valid[sl]).argmax(-1))
    return {k: torch.cat(v) for k, v in out.items()}
