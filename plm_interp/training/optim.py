"""AdamW with weight-decay groups, and the learning-rate schedule (warmup, then decay to a floor).

Why groups: weight decay pulls parameters towards zero. That regularises weight *matrices*, but on a
LayerNorm gain it fights the normalisation, on a bias it has no scale to regularise, and on an embedding
table it shrinks rarely-seen rows (rare tokens, long-range positions) much more than frequent ones. So by
default only matrices decay (minGPT's rule); ``TrainConfig.decay_params`` can add the other groups.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from plm_interp.training.config import TrainConfig

#: leaf parameter names that are lookup tables (token, position, relative-position embeddings)
EMBEDDING_NAMES = {"W_E", "W_pos", "rel_embed", "W_pos_attn", "weight_embedding"}


def param_group_of(module: nn.Module, leaf_name: str, param: nn.Parameter) -> str:
    """Classify one parameter as ``"norm"``, ``"embedding"``, ``"bias"`` or ``"matrix"``.

    Decided from the owning module's type and the parameter's own name, so it works for HookedPLM
    (TransformerLens names: ``W_*`` matrices, ``b_*`` biases, ``ln*.w``) and for plain ``torch.nn`` models.
    """
    kind = type(module).__name__.lower()
    if "norm" in kind or isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)):
        return "norm"
    if isinstance(module, nn.Embedding) or leaf_name in EMBEDDING_NAMES:
        return "embedding"
    if leaf_name == "bias" or leaf_name.startswith("b_") or param.dim() < 2:
        return "bias"
    return "matrix"


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Two AdamW groups (decay / no decay); each carries the parameter names it holds, for inspection."""
    decay, no_decay = {"params": [], "names": []}, {"params": [], "names": [], "weight_decay": 0.0}
    seen: set[int] = set()  # a tied parameter (GPT-2's wte = lm_head) is one tensor: its first owner decides
    for module_name, module in model.named_modules():
        for leaf, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            group = decay if param_group_of(module, leaf, param) in cfg.decay_params else no_decay
            group["params"].append(param)
            group["names"].append(f"{module_name}.{leaf}" if module_name else leaf)
    decay["weight_decay"] = cfg.weight_decay
    return [g for g in (decay, no_decay) if g["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`: weight decay only on the groups named in ``cfg.decay_params``."""
    groups = param_groups(model, cfg)
    for g in groups:  # AdamW tolerates extra keys, but keep its state dict lean
        g.pop("names")
    params = [p for g in groups for p in g["params"]]
    impl = adamw_impl({p.device.type for p in params}, {p.dtype for p in params})
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps, **impl)


#: dtypes the fused CUDA AdamW kernel takes
FUSED_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


def adamw_impl(device_types: set[str], dtypes: set[torch.dtype]) -> dict[str, bool]:
    """Which AdamW implementation to ask for, from where the parameters live (no CUDA needed to decide).

    * every parameter on CUDA in a float dtype: ``fused=True``, one kernel for the whole update (the fastest;
      the papers' runs are on GPUs);
    * anything else (CPU, MPS, mixed devices, no parameters): ``{}``, torch's default, which is the ``foreach``
      multi-tensor path where it applies and the per-parameter loop on CPU. CPU keeps the loop so that CPU
      runs, and their exact-resume tests, do not depend on the fused kernel.

    Example:
        >>> adamw_impl({"cuda"}, {torch.float32}), adamw_impl({"cpu"}, {torch.float32})
        ({'fused': True}, {})
    """
    if device_types == {"cuda"} and dtypes and dtypes <= FUSED_DTYPES:
        return {"fused": True}
    return {}


def lr_factor(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` at optimiser step ``step`` (0-based).

    Linear warmup from ``1/warmup_steps`` to 1 over ``warmup_steps`` steps, then ``schedule`` decays from 1 to
    ``min_lr_ratio`` at the last step (cosine: half a cosine period; linear: a straight line).

    Example:
        >>> cfg = TrainConfig(max_steps=10, warmup_steps=2, schedule="linear", min_lr_ratio=0.0)
        >>> [round(lr_factor(s, 10, cfg), 3) for s in (0, 1, 2, 6, 10)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    shape = 1.0 - progress if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step scheduler multiplying the lr by :func:`lr_factor` (warm-up, then the configured decay)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, cfg))
