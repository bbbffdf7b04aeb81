"""The one interface every positional scheme implements, and the registry that finds them.

A scheme is one module in this package holding one subclass of :class:`AttentionPositional` with a ``name``.
Defining the class registers it (``__init_subclass__``); the package imports every module it contains, so a
new scheme is one new file and nothing else, its own settings included. The class carries everything the rest
of the code needs to know:

* ``name`` (the ``PLMConfig.positional`` value) and ``tl_name`` (TransformerLens' ``positional_embedding_type``);
* ``config_class``: the scheme's own settings, a :class:`SchemeConfig` dataclass (``RotaryConfig``: ``rotary_dim``,
  ``rotary_base``), as SAELens keeps one config class per SAE architecture. ``PLMConfig`` takes them as keywords,
  reads them as attributes (``cfg.rotary_dim``) and writes them flat into ``config.json``; it never names them;
* :meth:`validate`: checks of the model's own fields that only this scheme constrains (called by ``PLMConfig``);
* :meth:`residual_embedding`: a module added to the residual stream at ``hook_pos_embed`` (abs), or None;
* inside attention, given query/key positions (absolute indices, so KV-cached decoding is the same code path):
  rotate queries and keys (rot), add a content-dependent bias to the scores (rel), or replace query·key
  altogether with scores that depend on positions only (``uses_qk = False``: pos, uni).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import nn

#: ``PLMConfig.positional`` value -> scheme class, filled as the scheme modules are imported.
SCHEMES: dict[str, type["AttentionPositional"]] = {}


@runtime_checkable
class ModelConfig(Protocol):
    """What a scheme reads of the model's config (``PLMConfig`` is one). The schemes never import ``PLMConfig``:
    the config imports this registry, so the dependency runs one way. The scheme's own settings read as
    attributes too (``cfg.rotary_dim``)."""

    d_model: int
    d_head: int
    n_heads: int
    n_ctx: int
    torch_dtype: torch.dtype


@dataclass
class SchemeConfig:
    """The settings only one positional scheme reads; a scheme with settings subclasses this dataclass.

    Each field is a ``PLMConfig`` keyword and ``config.json`` key of its own (``PLMConfig(positional="rot",
    rotary_dim=8)``, ``cfg.rotary_dim``), so its name should say which scheme it belongs to. A field whose default
    is ``None`` is derived from the model's shape by :meth:`resolve`; ``PLMConfig.replace`` derives it again
    while it still holds the derived value. This base class is the settings of a scheme without any.
    """

    def resolve(self, cfg: ModelConfig) -> None:
        """Fill the ``None`` defaults from the model's shape (``rotary_dim = d_head``). Default: nothing to fill."""

    def validate(self, cfg: ModelConfig) -> None:
        """Raise ``ConfigError`` naming the field when a setting cannot be built into ``cfg``'s model."""

    @classmethod
    def derived_fields(cls) -> tuple[str, ...]:
        """The fields :meth:`resolve` fills (those whose default is ``None``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.default is None)


def setting_names() -> frozenset[str]:
    """Every setting of every registered scheme (the keys ``PLMConfig`` accepts beside its own fields)."""
    return frozenset(f.name for scheme in SCHEMES.values() for f in dataclasses.fields(scheme.config_class) if f.init)


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
    #: the scheme's own settings (a :class:`SchemeConfig` dataclass; the base class has none)
    config_class: ClassVar[type[SchemeConfig]] = SchemeConfig

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name is not None:
            if cls.name in SCHEMES and SCHEMES[cls.name] is not cls:
                raise TypeError(f"positional scheme {cls.name!r} is defined twice: {SCHEMES[cls.name]} and {cls}")
            SCHEMES[cls.name] = cls

    @classmethod
    def validate(cls, cfg: ModelConfig) -> None:
        """Raise ``ConfigError`` naming the field when the model's own fields (``n_heads``, ...) cannot be built
        with this scheme; the scheme's settings check themselves (:meth:`SchemeConfig.validate`)."""

    @classmethod
    def residual_embedding(cls, cfg: ModelConfig) -> nn.Module | None:
        """A module ``(pos, batch) -> [batch, pos, d_model]`` added to the embeddings, or None (the default)."""
        return None

    def __init__(self, cfg: ModelConfig):
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
