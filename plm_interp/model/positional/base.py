"""The one interface every positional scheme implements inside an attention layer.

A scheme sees query/key positions (absolute indices, so KV-cached decoding is the same code path) and may:

* rotate queries and keys (rotary),
* add a content-dependent bias to the scores (DeBERTa-style relative),
* replace query·key altogether with scores that depend on positions only (``uses_qk = False``: pos, uni).

Absolute position embeddings act on the residual stream instead, so they live in the model (``pos_embed``);
their in-attention component is the plain default below.
"""
from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import nn

from plm_interp.config import PLMConfig


class AttentionPositional(nn.Module):
    """Default behaviour: content-only scores ``q·k / sqrt(d_head)`` (used by abs and none)."""

    #: False for schemes whose attention pattern is a function of positions alone (no W_Q / W_K).
    uses_qk: bool = True
    #: True when :meth:`rotate` changes q and k (then ``hook_rot_q`` / ``hook_rot_k`` fire).
    rotates: bool = False

    def __init__(self, cfg: PLMConfig):
        super().__init__()
        self.cfg = cfg
        self.scale = cfg.d_head**-0.5

    def rotate(
        self,
        q: Float[torch.Tensor, "batch q_pos head d_head"],
        k: Float[torch.Tensor, "batch k_pos head d_head"],
        q_pos: Int[torch.Tensor, "q_pos"],
        k_pos: Int[torch.Tensor, "k_pos"],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and keys as the scores see them, given their absolute positions. The default leaves them
        unchanged; rot overrides it (see :attr:`rotates`)."""
        return q, k

    def score_bias(
        self,
        q: Float[torch.Tensor, "batch head q_pos d_head"] | None,
        k: Float[torch.Tensor, "batch head k_pos d_head"] | None,
        q_pos: Int[torch.Tensor, "q_pos"],
        k_pos: Int[torch.Tensor, "k_pos"],
    ) -> Float[torch.Tensor, "batch head q_pos k_pos"] | None:
        """Scores added to ``scale * q·k`` (already scaled); ``None`` when the scheme adds nothing.

        For ``uses_qk = False`` schemes this is the whole score (shape ``[1, head, q_pos, k_pos]``).
        """
        return None


def relative_offsets(q_pos: torch.Tensor, k_pos: torch.Tensor) -> Int[torch.Tensor, "q_pos k_pos"]:
    """``i - j`` for every query position i and key position j."""
    return q_pos[:, None] - k_pos[None, :]
