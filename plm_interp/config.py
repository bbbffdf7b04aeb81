"""The model config: one small dataclass with TransformerLens field names.

Only architecture lives here (no training or task flags). ``positional`` picks the positional scheme; each
scheme's own knobs (``rotary_dim``, ``rel_max_distance``, ``uni_window_rule``) are read only by that scheme.
Everything is validated at construction, so a bad config fails before any weight is allocated.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

POSITIONAL_SCHEMES = ("abs", "rot", "rel", "pos", "uni", "none")
ATTENTION_DIRS = ("causal", "bidirectional")
ACT_FNS = ("gelu", "gelu_new", "relu", "silu")
UNI_WINDOW_RULES = ("2^h-1", "2^(h-1)")

#: TransformerLens' name for each of our schemes (TL code sometimes branches on it).
_TL_POSITIONAL_NAME = {"abs": "standard", "rot": "rotary", "rel": "relative", "pos": "position_only",
                       "uni": "uniform", "none": "none"}


class ConfigError(ValueError):
    """A config field has a value the model cannot be built with; the message names the field."""


@dataclass
class PLMConfig:
    """Architecture of a :class:`~plm_interp.model.HookedPLM` (field names follow TransformerLens).

    Example:
        >>> cfg = PLMConfig(d_model=64, n_layers=2, n_heads=4, d_vocab=10, n_ctx=32, positional="rot")
        >>> cfg.d_head, cfg.d_mlp
        (16, 256)
    """

    d_model: int
    n_layers: int
    n_heads: int
    d_vocab: int
    n_ctx: int
    positional: str = "rot"
    d_head: int | None = None  # default d_model // n_heads
    d_mlp: int | None = None  # default 4 * d_model
    d_vocab_out: int | None = None  # default d_vocab
    act_fn: str = "gelu"
    normalization_type: str = "LN"
    eps: float = 1e-5
    attention_dir: str = "causal"  # "bidirectional" gives the masked-LM encoder
    rotary_dim: int | None = None  # rot: how many dims of each head rotate (default d_head)
    rotary_base: float = 10000.0
    rel_max_distance: int = 128  # rel: relative distances are clipped to [-k, k-1] (DeBERTa's k)
    uni_window_rule: str = "2^h-1"  # uni: head h = 1..n_heads averages the last w(h) tokens
    initializer_range: float | None = None  # default 0.8 / sqrt(d_model), as TransformerLens
    seed: int | None = None
    dtype: str = "float32"
    device: str = "cpu"
    model_name: str = "plm"
    #: The task the model is trained on (``Task.spec()``), so analyses and checkpoints need nothing else.
    task: dict[str, Any] | None = None
    # Fields TransformerLens utilities read; fixed for this architecture.
    n_key_value_heads: int | None = field(default=None, init=False)
    attn_only: bool = field(default=False, init=False)
    parallel_attn_mlp: bool = field(default=False, init=False)
    use_attn_result: bool = field(default=False, init=False)
    final_rms: bool = field(default=False, init=False)
    default_prepend_bos: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "d_vocab", "n_ctx"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"config field {name!r} must be a positive integer, got {value!r}")
        _choice("positional", self.positional, POSITIONAL_SCHEMES)
        _choice("attention_dir", self.attention_dir, ATTENTION_DIRS)
        _choice("act_fn", self.act_fn, ACT_FNS)
        _choice("normalization_type", self.normalization_type, ("LN",))
        _choice("uni_window_rule", self.uni_window_rule, UNI_WINDOW_RULES)
        _choice("dtype", self.dtype, ("float32", "float64", "bfloat16", "float16"))
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise ConfigError(f"config field 'd_model' = {self.d_model} is not divisible by "
                                  f"'n_heads' = {self.n_heads}; set d_head explicitly or change one of them")
            self.d_head = self.d_model // self.n_heads
        self.d_mlp = 4 * self.d_model if self.d_mlp is None else self.d_mlp
        self.d_vocab_out = self.d_vocab if self.d_vocab_out is None else self.d_vocab_out
        for name in ("d_head", "d_mlp", "d_vocab_out", "rel_max_distance"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"config field {name!r} must be a positive integer, got {value!r}")
        if self.rotary_dim is None:
            self.rotary_dim = self.d_head
        if self.positional == "rot" and (self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.d_head):
            raise ConfigError(f"config field 'rotary_dim' = {self.rotary_dim} must be even and in (0, d_head={self.d_head}]")
        if self.positional == "uni" and self.n_heads > 30:
            raise ConfigError(f"config field 'n_heads' = {self.n_heads}: uni's window rule {self.uni_window_rule} "
                              "gives head windows up to 2^n_heads tokens; at most 30 heads are allowed")
        if self.initializer_range is None:
            self.initializer_range = 0.8 / self.d_model**0.5
        if not self.eps > 0:
            raise ConfigError(f"config field 'eps' must be > 0, got {self.eps!r}")

    @property
    def positional_embedding_type(self) -> str:
        """TransformerLens' name for the scheme (``"standard"`` for abs, ``"rotary"`` for rot, ...)."""
        return _TL_POSITIONAL_NAME[self.positional]

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a ``torch.dtype`` (the field stays a string so the config serialises to JSON)."""
        return getattr(torch, self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """The constructor fields as a plain dict (stored in a checkpoint's ``config.json``); :meth:`from_dict`
        inverts it."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "PLMConfig":
        """Build from a dict (e.g. a checkpoint's config.json); unknown fields are refused by name."""
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "PLMConfig":
        """A copy with ``changes`` applied, validated like a new config. A derived field that still holds its
        default (``d_head = d_model // n_heads``, ``d_mlp = 4 * d_model``, ...) is derived again from the new
        values, so ``cfg.replace(d_model=256)`` is the 256-wide model; one that was set explicitly is kept."""
        d = self.to_dict()
        for name in DERIVED_FIELDS:
            if name in changes:
                continue
            try:
                default = PLMConfig.from_dict({**d, name: None}).to_dict()[name]
            except ConfigError:  # e.g. d_head set because d_model is not a multiple of n_heads
                continue
            if default == d[name]:
                d[name] = None
        return PLMConfig.from_dict({**d, **changes})


#: fields whose ``None`` default is derived from other fields in ``__post_init__`` (``d_head`` before
#: ``rotary_dim``, which defaults to it)
DERIVED_FIELDS = ("d_head", "d_mlp", "d_vocab_out", "rotary_dim", "initializer_range")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"config field {name!r} = {value!r} is not one of {list(allowed)}")


#: Named model sizes. Vocabulary and context come from the task; the rest from here.
PRESETS: dict[str, dict[str, int]] = {
    "gpt2-small": dict(n_layers=12, n_heads=12, d_model=768),  # the papers' size
    "small": dict(n_layers=4, n_heads=4, d_model=128),  # CPU: trains on the demo grammar in minutes
    "tiny": dict(n_layers=2, n_heads=2, d_model=32),  # tests
}


def preset_config(name: str, **fields: Any) -> PLMConfig:
    """A config from a named size preset plus the remaining fields (``d_vocab``, ``n_ctx``, ``positional``...)."""
    if name not in PRESETS:
        raise ConfigError(f"model preset {name!r} is unknown; known presets: {sorted(PRESETS)}")
    return PLMConfig(**{**PRESETS[name], **fields})
