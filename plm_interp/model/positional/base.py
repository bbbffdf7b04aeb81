"""The one interface every positional scheme implements, and the registry that finds them.

A scheme is one module in this package holding one subclass of :class:`AttentionPositional` with a ``name``.
Defining the class registers it (``__init_subclass__``); the package imports every module it contains, so a
new scheme is one new file and nothing else. The class carries everything the rest of the code needs to know:

* ``name`` (the ``PLMConfig.positional`` value) and ``tl_name`` (TransformerLens' ``positional_embedding_type``);
* :meth:`validate`: checks of the config fields only this scheme reads (called by ``PLMConfig``);
* :meth:`residual_embedding`: a module added to the residual stream at ``hook_pos_embed`` (abs), or None;
* inside attention, given query/key positions (absolute indices, so KV-cached decoding is the same code path):
  rotate queries and keys (rot), add a content-dependent bias to the scores (rel), or replace query·key
  altogether with scores that depend on positions only (``uses_qk = False``: pos, uni).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from jaxtyping import Float, Int
from torch import nn

if TYPE_CHECKING:  # the config imports this registry lazily; no import cycle at run time
    from plm_interp.config import PLMConfig

#: ``PLMConfig.positional`` value -> scheme class, filled as the scheme modules are imported.
SCHEMES: dict[str, type["AttentionPositional"]] = {}


class AttentionPositional(nn.Module):
    """Default behaviour: content-only scores ``q·k / sqrt(d_head)``; subclasses override what they change."""

    #: the ``PLMConfig.positional`` value; a subclass that sets it is registered in :data:`SCHEMES`
    name: ClassVar[str | None] = None
    #: TransformerLens' ``positional_embedding_type`` for this scheme (TL code sometimes branches on it)
    tl_name: ClassVar[str] = ""
    #: one line for tables and ``--help`` texts
    summary: ClassVar[str] = ""
    #: sort key of the scheme lists (the papers' order; a new scheme without one comes last)
    rank: ClassVar[int] = 99
    #: False for schemes whose attention pattern is a function of positions alone (no W_Q / W_K).
    uses_qk: ClassVar[bool] = True
    #: True when :meth:`rotate` changes q and k (then ``hook_rot_q`` / ``hook_rot_k`` fire).
    rotates: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name is not None:
            if cls.name in SCHEMES and SCHEMES[cls.name] is not cls:
                raise TypeError(f"positional scheme {cls.name!r} is defined twice: {SCHEMES[cls.name]} and {cls}")
            SCHEMES[cls.name] = cls

    @classmethod
    def validate(cls, cfg: "PLMConfig") -> None:
        """Raise ``ConfigError`` naming the field when ``cfg`` cannot be built with this scheme."""

    @classmethod
    def residual_embedding(cls, cfg: "PLMConfig") -> nn.Module | None:
        """A module ``(pos, batch) -> [batch, pos, d_model]`` added to the embeddings, or None (the default)."""
        return None

    def __init__(self, cfg: "PLMConfig"):
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
