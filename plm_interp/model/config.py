"""The model config: one small dataclass with TransformerLens field names.

Only architecture lives here (no training or task flags). ``positional`` picks the positional scheme; the
scheme's own settings (``rotary_dim``, ``rel_max_distance``, ``uni_window_rule``, ...) are its own dataclass,
defined in its module (``positional_cfg``, a :class:`~plm_interp.model.positional.SchemeConfig`), and still read
and written as if they were fields here: ``PLMConfig(positional="rot", rotary_dim=8)``, ``cfg.rotary_dim``, one flat
``config.json``. This module names no scheme and no setting, so a scheme with settings is one file. It imports
the scheme registry; the schemes never import it.
Everything is validated at construction, so a bad config fails before any weight is allocated.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from plm_interp.model.positional import SCHEMES, SchemeConfig, scheme_names, setting_names
from plm_interp.validation import ConfigError, check_choice, check_types, init_fields

ATTENTION_DIRS = ("causal", "bidirectional")
DTYPES = ("float32", "float64", "bfloat16", "float16")
ACT_FNS = ("gelu", "gelu_new", "relu", "silu")
#: the schemes of ``plm_interp/model/positional/`` in the papers' order (``scheme_names()`` is the live list,
#: which also holds schemes registered later from outside the package)
POSITIONAL_SCHEMES = scheme_names()

#: the largest LayerNorm ``eps`` accepted (see :class:`PLMConfig`); typical values are 1e-5 .. 1e-6
MAX_LN_EPS = 1e-2

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
    initializer_range: float | None = None  # default 0.8 / sqrt(d_model), as TransformerLens
    seed: int | None = None
    #: a ``torch.dtype`` after construction, as TransformerLens' ``cfg.dtype`` (``torch.zeros(..., dtype=cfg.dtype)``
    #: works); given as a dtype or its name, and written to ``config.json`` as the name (``to_dict``)
    dtype: torch.dtype | str = "float32"
    device: str = "cpu"
    model_name: str = "plm"
    #: The task the model is trained on (``Task.spec()``), so analyses and checkpoints need nothing else.
    task: dict[str, Any] | None = None
    #: the scheme's own settings (its ``config_class``); built from the keywords when not given. Each setting reads
    #: and writes as an attribute of the config (``cfg.rotary_dim``), as TransformerLens' config has them
    positional_cfg: SchemeConfig | None = None
    # Fields TransformerLens utilities read; fixed for this architecture.
    n_key_value_heads: int | None = field(default=None, init=False)
    attn_only: bool = field(default=False, init=False)
    parallel_attn_mlp: bool = field(default=False, init=False)
    final_rms: bool = field(default=False, init=False)
    default_prepend_bos: bool = field(default=False, init=False)
    # Hook switches (``model.set_use_attn_result`` ...): TL's names; session state, not saved in config.json and
    # not part of a config's identity (==)
    use_attn_result: bool = field(default=False, init=False, compare=False)
    use_split_qkv_input: bool = field(default=False, init=False, compare=False)
    use_hook_mlp_in: bool = field(default=False, init=False, compare=False)
    use_attn_in: bool = field(default=False, init=False, compare=False)
    # Read by TL utilities; fixed for this architecture (TL's values for a custom HookedTransformerConfig).
    original_architecture: str | None = field(default=None, init=False)
    tokenizer_name: str | None = field(default=None, init=False)
    tokenizer_prepends_bos: bool = field(default=False, init=False)  # to_tokens adds BOS, never the tokenizer
    init_mode: str = field(default="gpt2", init=False)  # init_weights: GPT-2 normal(0, initializer_range)
    gated_mlp: bool = field(default=False, init=False)
    n_devices: int = field(default=1, init=False)

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "d_vocab", "n_ctx"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"config field {name!r} must be a positive integer, got {value!r}")
        settings = self.__dict__.pop("_settings", {})
        check_choice("config field 'positional'", self.positional, scheme_names())
        check_choice("config field 'attention_dir'", self.attention_dir, ATTENTION_DIRS)
        check_choice("config field 'act_fn'", self.act_fn, ACT_FNS)
        # "LNPre" is what process_weights_ leaves (TL's name for LN with w = 1, b = 0; the modules stay LayerNorm)
        check_choice("config field 'normalization_type'", self.normalization_type, ("LN", "LNPre"))
        if isinstance(self.dtype, torch.dtype):
            self.dtype = str(self.dtype).removeprefix("torch.")
        check_choice("config field 'dtype'", self.dtype, DTYPES)
        if self.dtype == "float16" and str(self.device).startswith("cpu"):
            # CPU float16 kernels overflow where CUDA's accumulate in float32: the loss goes NaN silently
            raise ConfigError("config field 'dtype' = 'float16' is not supported on device 'cpu' (it trains to "
                              "NaN there); use 'bfloat16' or 'float32' on CPU, or float16 on a CUDA device")
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise ConfigError(f"config field 'd_model' = {self.d_model} is not divisible by "
                                  f"'n_heads' = {self.n_heads}; set d_head explicitly or change one of them")
            self.d_head = self.d_model // self.n_heads
        self.d_mlp = 4 * self.d_model if self.d_mlp is None else self.d_mlp
        self.d_vocab_out = self.d_vocab if self.d_vocab_out is None else self.d_vocab_out
        for name in ("d_head", "d_mlp", "d_vocab_out"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:  # d_mlp=True is no width
                raise ConfigError(f"config field {name!r} must be a positive integer, got {value!r}")
        if self.initializer_range is None:
            self.initializer_range = 0.8 / self.d_model**0.5
        for name in ("initializer_range", "eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"config field {name!r} must be a finite number > 0, got {value!r}")
        if self.eps > MAX_LN_EPS:  # LayerNorm divides by sqrt(var + eps): a large eps flattens every activation
            raise ConfigError(f"config field 'eps' = {self.eps!r} must be <= {MAX_LN_EPS:g}: LayerNorm divides by "
                              f"sqrt(variance + eps), and the residual's variance is about initializer_range^2 = "
                              f"{self.initializer_range ** 2:.2g}, so a larger eps scales every activation towards 0 "
                              "(typical 1e-5)")
        self.positional_cfg = self._scheme_settings(settings)
        self.positional_cfg.resolve(self)
        self.positional_cfg.validate(self)  # the settings only the chosen scheme reads
        SCHEMES[self.positional].validate(self)  # the model's fields the scheme constrains
        self.dtype = getattr(torch, self.dtype)  # checked by name above; TL code reads a torch.dtype

    def _scheme_settings(self, settings: dict[str, Any]) -> SchemeConfig:
        """The chosen scheme's settings from the keywords; settings of other schemes are inert and dropped (a
        config.json written before each scheme had its own dataclass holds every scheme's settings)."""
        config_class = SCHEMES[self.positional].config_class
        unknown = sorted(set(settings) - setting_names())
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(self.field_hints())}")
        if self.positional_cfg is not None:
            if settings:
                raise ConfigError(f"config fields {sorted(settings)}: give the scheme's settings as keywords or as "
                                  "positional_cfg, not both")
            if type(self.positional_cfg) is not config_class:
                raise ConfigError(f"config field 'positional_cfg' is a {type(self.positional_cfg).__name__}; "
                                  f"positional {self.positional!r} takes a {config_class.__name__}")
            return dataclasses.replace(self.positional_cfg)  # a copy: resolve() fills it in place
        own = {f.name for f in dataclasses.fields(config_class) if f.init}
        mine = {k: v for k, v in settings.items() if k in own}
        mine = {**mine, **check_types(config_class, mine, "config")}  # numbers as the dataclass declares them
        return config_class(**mine)

    def __getattr__(self, name: str) -> Any:
        # only called when ordinary lookup fails: a setting of the chosen scheme (``cfg.rotary_dim``)
        settings = self.__dict__.get("positional_cfg")
        if settings is not None and not name.startswith("_") and name in _init_names(type(settings)):
            return getattr(settings, name)
        # another scheme's setting reads None, as in TransformerLens's config (``cfg.rotary_dim`` is None on a model
        # without rotary), so code written for HookedTransformer can ask any model
        if not name.startswith("_") and any(name in _init_names(s.config_class) for s in SCHEMES.values()):
            return None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        settings = self.__dict__.get("positional_cfg")
        if settings is not None and name in _init_names(type(settings)):
            setattr(settings, name, value)
        else:
            object.__setattr__(self, name, value)

    @classmethod
    def field_hints(cls) -> dict[str, Any]:
        """The keys a config accepts (its own fields and every registered scheme's settings) and their types: what
        ``from_dict`` and the CLI's ``[model]`` section check against."""
        hints = {}
        for scheme in SCHEMES.values():
            hints.update(init_fields(scheme.config_class))
        hints.update(init_fields(cls))
        hints.pop("positional_cfg")
        return hints

    @property
    def positional_embedding_type(self) -> str:
        """TransformerLens' name for the scheme (``"standard"`` for abs, ``"rotary"`` for rot, ...)."""
        return SCHEMES[self.positional].tl_name

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` (kept for older callers; ``cfg.dtype`` itself is the ``torch.dtype`` now)."""
        return self.dtype

    @property
    def dtype_name(self) -> str:
        """``dtype`` as its name (``"float32"``), the form ``config.json`` stores."""
        return str(self.dtype).removeprefix("torch.")

    @property
    def n_params(self) -> int:
        """TransformerLens' count: the attention and MLP weight matrices of the blocks (no embeddings, biases or
        LayerNorms), ``n_layers * (4 * d_model * d_head * n_heads + 2 * d_model * d_mlp)``. pos/uni heads have no
        W_Q/W_K, so they count 2 instead of 4 matrices."""
        qk = 2 if SCHEMES[self.positional].uses_qk else 0
        return self.n_layers * ((qk + 2) * self.d_model * self.d_head * self.n_heads + 2 * self.d_model * self.d_mlp)

    def to_dict(self) -> dict[str, Any]:
        """The constructor fields as a plain dict of JSON values, the scheme's settings among them (stored in a
        checkpoint's ``config.json``, the dtype as its name); :meth:`from_dict` inverts it."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init and f.name != "positional_cfg"}
        d.update(dataclasses.asdict(self.positional_cfg))
        d["dtype"] = self.dtype_name
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "PLMConfig":
        """Build from a dict (e.g. a checkpoint's config.json); unknown fields are refused by name."""
        known = cls.field_hints()
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "PLMConfig":
        """A copy with ``changes`` applied, validated like a new config. A derived field that still holds its
        default (``d_head = d_model // n_heads``, ``d_mlp = 4 * d_model``, ...) is derived again from the new
        values, so ``cfg.replace(d_model=256)`` is the 256-wide model; one that was set explicitly is kept."""
        d = self.to_dict()
        for name in DERIVED_FIELDS + self.positional_cfg.derived_fields():
            if name in changes:
                continue
            try:
                default = PLMConfig.from_dict({**d, name: None}).to_dict()[name]
            except ConfigError:  # e.g. d_head set because d_model is not a multiple of n_heads
                continue
            if default == d[name]:
                d[name] = None
        return PLMConfig.from_dict({**d, **changes})


#: fields whose ``None`` default is derived from other fields in ``__post_init__`` (a scheme's settings name
#: their own: ``SchemeConfig.derived_fields``)
DERIVED_FIELDS = ("d_head", "d_mlp", "d_vocab_out", "initializer_range")


@functools.cache
def _init_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def _takes_scheme_settings(init):
    """Wrap the dataclass ``__init__`` so it also takes the chosen scheme's settings as keywords
    (``PLMConfig(positional="rot", rotary_dim=8)``): they are kept aside for ``__post_init__``, which builds the
    scheme's own config from them. The dataclass names none of them, so a new scheme's settings need no edit here."""

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        own = _init_names(type(self))
        object.__setattr__(self, "_settings", {k: kwargs.pop(k) for k in list(kwargs) if k not in own})
        init(self, *args, **kwargs)

    return __init__


PLMConfig.__init__ = _takes_scheme_settings(PLMConfig.__init__)


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
