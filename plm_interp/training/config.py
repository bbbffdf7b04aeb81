"""TrainConfig: everything the training loop needs to know, and nothing about the model or the task.

One flat dataclass with defaults (minGPT's "one default config per component"), validated at construction
so a bad value fails before any data is generated or any file is written. Every error names the key as the
user wrote it (``train.lr``), because the same checks serve the Python API and the TOML/``--set`` CLI.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from plm_interp.validation import (ConfigError, check_choice, check_device_available, check_device_name, check_known,
                                   check_types)

SCHEDULES = ("cosine", "linear", "constant")
#: train keys that change how a run is executed or reported, not its result; they may differ on resume
RUNTIME_KEYS = frozenset({"progress", "tensorboard", "num_workers", "prefetch_factor", "log_every", "eval_every",
                          "ckpt_every", "keep_checkpoints", "device", "compile"})
#: the largest ``lr`` / ``adam_eps`` accepted (see the checks in :meth:`TrainConfig.__post_init__`)
MAX_LR, MAX_ADAM_EPS = 1.0, 1.0
PRECISIONS = ("auto", "fp32", "bf16")
#: Parameter groups that ``decay_params`` may name; see :func:`plm_interp.training.optim.param_group_of`.
PARAM_GROUPS = ("matrix", "embedding", "bias", "norm")


@dataclass
class TrainConfig:
    """How to train: optimiser, schedule, batch geometry, budget, precision, logging and checkpoints.

    Batch geometry is stated globally so that a run means the same thing on 1 or N GPUs: ``batch_size``
    sequences per optimiser step (all ranks and accumulation steps together), split into forward passes of
    ``micro_batch_size`` sequences per rank. Gradient accumulation is derived:
    ``batch_size / (micro_batch_size * world_size)`` micro-steps per optimiser step.

    Defaults follow Part 1 of the paper (AdamW β=(0.9, 0.98), weight decay 0.1, lr 3e-4).

    Example:
        >>> TrainConfig(batch_size=8, max_steps=100).grad_accum(world_size=1)
        1
        >>> TrainConfig(batch_size=8, micro_batch_size=2, max_steps=100).grad_accum(world_size=2)
        2
    """

    seed: int = 0
    batch_size: int = 32
    micro_batch_size: int | None = None  # default: batch_size / world_size (no accumulation)
    max_steps: int | None = None  # budget: give max_steps or max_tokens (or both: whichever is first)
    max_tokens: int | None = None  # counts every token position of every sequence
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-8
    weight_decay: float = 0.1
    decay_params: tuple[str, ...] = ("matrix",)  # which of PARAM_GROUPS get weight decay
    warmup_steps: int = 0
    schedule: str = "linear"  # after warmup: linear or cosine decay to min_lr_ratio * lr, or constant
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool | str = False  # torch.compile the forward pass: true = inductor, or a backend name ("aot_eager")
    device: str = "auto"  # auto: cuda:{local_rank} when CUDA is available, else cpu
    num_workers: int = 0  # DataLoader worker processes per rank generating data (0: in the main process)
    prefetch_factor: int = 4  # batches each worker keeps ready
    log_every: int = 10  # steps between metric lines / progress-bar updates
    eval_every: int = 0  # steps between evaluation callbacks (0: only at the end)
    ckpt_every: int = 1000  # steps between training checkpoints (0: only at the end)
    keep_checkpoints: int = 3  # newest k training checkpoints kept on disk
    tensorboard: bool = False
    progress: bool = True  # tqdm bar on rank 0
    init_from: str | None = None  # start from these weights: a model directory or a shipped model's name
    lora: dict[str, Any] | None = None  # LoRA fine-tuning, e.g. {rank = 8, targets = ["W_Q", "W_V"]}: lora.py

    def __post_init__(self) -> None:
        for name, value in check_types(type(self), dataclasses.asdict(self), "train").items():
            setattr(self, name, value)
        self.betas = tuple(self.betas)
        self.decay_params = tuple(self.decay_params)
        for name in ("batch_size", "micro_batch_size", "max_steps", "max_tokens", "log_every", "prefetch_factor",
                     "keep_checkpoints"):
            _require(name, getattr(self, name), lambda v: v is None or v >= 1, "must be >= 1")
        for name in ("warmup_steps", "num_workers", "eval_every", "ckpt_every"):
            _require(name, getattr(self, name), lambda v: v >= 0, "must be >= 0")
        if self.max_steps is None and self.max_tokens is None:
            raise ConfigError("train.max_steps / train.max_tokens: give a budget (at least one of them)")
        # Ranges a run can learn in, not only types: lr = 1e300 overflows inside Adam, adam_eps = 1e30 divides
        # every update to nothing, lr * weight_decay >= 1 zeroes or flips the weights each step; all exit 0.
        _require("lr", self.lr, lambda v: 0 < v <= MAX_LR, f"must be > 0 and <= {MAX_LR:g} (AdamW steps move each "
                 "weight by about lr; typical values are 1e-4 .. 3e-3)")
        _require("betas", self.betas, lambda v: len(v) == 2 and all(0 <= b < 1 for b in v),
                 "must be two numbers in [0, 1)")
        _require("adam_eps", self.adam_eps, lambda v: 0 < v < MAX_ADAM_EPS,
                 f"must be > 0 and < {MAX_ADAM_EPS:g} (it is added to the gradient's RMS, which is far below 1: a "
                 "larger eps shrinks every update towards nothing; typical 1e-8)")
        _require("weight_decay", self.weight_decay, lambda v: 0 <= v < math.inf, "must be a finite number >= 0")
        if self.lr * self.weight_decay >= 1:
            raise ConfigError(f"train.lr * train.weight_decay = {self.lr:g} * {self.weight_decay:g} >= 1: AdamW "
                              "multiplies every weight by 1 - lr * weight_decay each step, which zeroes or flips "
                              "it; lower train.weight_decay")
        _require("min_lr_ratio", self.min_lr_ratio, lambda v: 0 <= v <= 1, "must be in [0, 1]")
        _require("grad_clip", self.grad_clip, lambda v: v >= 0, "must be >= 0")
        check_choice("train.schedule", self.schedule, SCHEDULES)
        check_choice("train.precision", self.precision, PRECISIONS)
        for group in self.decay_params:
            check_choice("train.decay_params", group, PARAM_GROUPS)
        if self.lora is not None:  # validated here so a bad adapter spec fails before any work
            from plm_interp.training.lora import LoRAConfig
            LoRAConfig.from_dict(self.lora)
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ConfigError(f"train.micro_batch_size = {self.micro_batch_size} must divide "
                              f"train.batch_size = {self.batch_size}")
        check_device_name(self.device)

    def warmup_warning(self, total_steps: int) -> str | None:
        """A message when ``warmup_steps`` exceeds the run's ``total_steps``: the learning rate then never
        reaches ``lr`` (only ``total_steps / warmup_steps`` of it), which a typo in either number causes; None
        otherwise. A warning, not a refusal: a short test run of a long recipe does this on purpose."""
        if self.warmup_steps <= total_steps:
            return None
        peak = total_steps / self.warmup_steps
        return (f"train.warmup_steps = {self.warmup_steps} is more than the run's {total_steps} steps: the learning "
                f"rate only reaches {100 * peak:.2g}% of train.lr = {self.lr:g} ({peak * self.lr:.3g}); set "
                f"train.warmup_steps <= {total_steps} to train at the lr asked for")

    def validate(self) -> "TrainConfig":
        """Check what depends on this machine rather than on the values: the device exists, bf16 works there.

        Kept out of construction so a saved config (``train.device = "cuda"``) can still be read on a CPU
        machine; every entry point calls it before writing anything (the CLI before ``config.json``, the
        :class:`~plm_interp.training.Trainer` before it moves the model). Returns ``self``; raises
        :class:`ConfigError` naming ``train.device`` / ``train.precision``.
        """
        check_device_available(self.device)
        if isinstance(self.compile, str):
            import torch._dynamo

            if self.compile not in torch._dynamo.list_backends(exclude_tags=()):
                raise ConfigError(f"train.compile = {self.compile!r} is not a torch.compile backend; use true "
                                  f"(inductor) or one of {torch._dynamo.list_backends(exclude_tags=())}")
        if self.precision == "bf16" and self.device.startswith("cuda") and not _cuda_bf16():
            raise ConfigError(f"train.precision = 'bf16' but {_cuda_name()} has no bfloat16 support; use "
                              "train.precision = 'fp32'")
        return self

    def grad_accum(self, world_size: int) -> int:
        """Micro-steps per optimiser step on each rank; refuses a batch that does not split evenly."""
        micro = self.micro_batch_size if self.micro_batch_size is not None else self.batch_size // world_size
        if micro < 1 or self.batch_size % (micro * world_size):
            raise ConfigError(f"train.batch_size = {self.batch_size} does not split into micro-batches of "
                              f"{micro} sequences on {world_size} rank(s)")
        return self.batch_size // (micro * world_size)

    def micro_batch(self, world_size: int) -> int:
        """Sequences per forward pass on each rank: ``batch_size / (grad_accum(world_size) * world_size)``."""
        return self.batch_size // (self.grad_accum(world_size) * world_size)

    def total_steps(self, n_ctx: int) -> int:
        """Optimiser steps in the budget: the smaller of max_steps and ceil(max_tokens / tokens per step)."""
        steps = [self.max_steps] if self.max_steps is not None else []
        if self.max_tokens is not None:
            steps.append(-(-self.max_tokens // (self.batch_size * n_ctx)))
        return min(steps)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict, tuples as lists (JSON and TOML have none); :meth:`from_dict` inverts it."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "train") -> "TrainConfig":
        """Build from a dict (the ``[train]`` TOML section); unknown keys are refused as ``{source}.key``."""
        check_known(cls, data, source)
        return cls(**data)


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _cuda_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "this machine"


def _require(name: str, value: Any, predicate, message: str) -> None:
    if value is not None and not predicate(value):
        raise ConfigError(f"train.{name} = {value!r} {message}")
