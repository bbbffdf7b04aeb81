"""The ``train.lora`` table: which matrices get a LoRA adapter, its rank and scale (see :mod:`.lora`).

Its own module because it validates itself and names the bad key (``train.lora.targets = ...``), like the other
config dataclasses, which the tests' runtime type checks leave to their own messages (tests/typecheck_modules.py).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from plm_interp.config import ConfigError

#: weight name → the submodule attribute that owns it in each block (or the model, for W_E)
TARGETS = {"W_Q": "attn", "W_K": "attn", "W_V": "attn", "W_O": "attn", "W_in": "mlp", "W_out": "mlp",
           "W_E": "embed"}
ADAPTERS_FILE = "lora_adapters.safetensors"


@dataclass(frozen=True)
class LoRAConfig:
    """Which matrices get an adapter, its rank and scale ``alpha / rank``.

    Defaults follow Part 2.2 App. D.3 ("LoRA on the query/value matrices"); add ``"W_E"`` to ``targets`` for
    its "rank 2r on the embedding" (``embed_rank`` defaults to ``2 * rank``). ``alpha`` defaults to ``rank``
    (scale 1): the papers do not state it.
    """
    rank: int = 8
    alpha: float | None = None
    targets: tuple[str, ...] = ("W_Q", "W_V")
    embed_rank: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        for name in ("rank", "embed_rank"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ConfigError(f"train.lora.{name} = {v!r} must be an int >= 1")
        if self.alpha is not None and (isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float))
                                       or not 0 < self.alpha < math.inf):
            raise ConfigError(f"train.lora.alpha = {self.alpha!r} must be a number > 0")
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets or len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"train.lora.targets = {list(self.targets)!r} must be distinct names from "
                              f"{list(TARGETS)}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"train.lora.seed = {self.seed!r} must be an int")

    @property
    def scale(self) -> float:
        """``alpha / rank``: the factor on ``A B``."""
        return (self.rank if self.alpha is None else self.alpha) / self.rank

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LoRAConfig":
        """From the ``train.lora`` table; unknown keys are refused, naming them."""
        if not isinstance(data, dict):
            raise ConfigError(f"train.lora = {data!r} must be a table, e.g. {{rank = 8, targets = [\"W_Q\"]}}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown key(s) {[f'train.lora.{k}' for k in unknown]}; known: "
                              f"{sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what :func:`save_adapters` stores in the file's metadata)."""
        return {**asdict(self), "targets": list(self.targets)}
