"""The multi-head linear probe of Part 1 (eq. 4.2).

    G_i(x) = Σ_r Σ_k w_{r, i→k} · f_r(E_k(x)),    w_{r, i→·} = softmax_k ⟨P_{i,r}, P_{k,r}⟩

``f_r`` is linear from the hidden width to the classes, ``P`` are trainable *position-only* embeddings, so the
probe may only choose *where* to read, never compute anything non-linear from the content. ``mode`` restricts k:
``"full"`` (all valid positions), ``"tridiagonal"`` (|k − i| ≤ 1) or ``"diagonal"`` (k = i: a plain linear probe).
"""
from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import nn

from plm_interp.probes.seeding import seeded

MODES = ("full", "tridiagonal", "diagonal")


class MultiHeadLinearProbe(nn.Module):
    """The paper's position-attentive linear probe (module doc); ``mode`` limits which positions k it reads."""
    def __init__(self, d_model: int, n_classes: int, n_ctx: int, n_heads: int = 16, width: int = 1024,
                 mode: str = "full", seed: int = 0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"probe mode = {mode!r} is not one of {list(MODES)}")
        for name, v in (("n_classes", n_classes), ("n_heads", n_heads), ("width", width), ("n_ctx", n_ctx)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"probe {name} = {v!r} must be a positive integer")
        self.mode, self.n_heads, self.n_classes = mode, n_heads, n_classes
        with seeded(seed):  # the initial weights depend on ``seed`` only
            self.f = nn.Linear(d_model, n_heads * n_classes)
            self.P = nn.Parameter(torch.randn(n_ctx, n_heads, width) * width**-0.5) if mode != "diagonal" else None

    def mixing(self, n: int, device=None) -> Float[torch.Tensor, "head pos pos"]:
        """``w[r, i, k]``: how much head r of position i reads from position k (before padding is removed)."""
        if self.mode == "diagonal":
            return torch.eye(n, device=device).expand(self.n_heads, n, n)
        P = self.P[:n]
        logits = torch.einsum("irw,krw->rik", P, P)
        if self.mode == "tridiagonal":
            idx = torch.arange(n, device=P.device)
            logits = logits.masked_fill((idx[:, None] - idx[None, :]).abs() > 1, float("-inf"))
        return torch.softmax(logits, dim=-1)

    def forward(
        self, resid: Float[torch.Tensor, "batch pos d_model"], valid: Bool[torch.Tensor, "batch pos"]
    ) -> Float[torch.Tensor, "batch pos n_classes"]:
        """Scores per position. Keys where ``valid`` is False (padding) get no weight: the softmax restricted to
        valid keys equals the full softmax renormalised over them, so no ``[batch, head, pos, pos]`` tensor is built."""
        b, n, _ = resid.shape
        per_head = self.f(resid).view(b, n, self.n_heads, self.n_classes)
        if self.mode == "diagonal":
            return per_head.sum(2)
        w = self.mixing(n)
        v = valid.to(per_head.dtype)
        num = torch.einsum("rik,bkrc->birc", w, per_head * v[:, :, None, None])
        den = torch.einsum("rik,bk->bir", w, v).clamp_min(1e-30)
        return (num / den[..., None]).sum(2)
