"""LoRA fine-tuning (Hu et al. 2021) on a HookedPLM, without touching the model's code.

Part 2.2 (App. D.3) compares LoRA with full fine-tuning on retry data: "LoRA rank r on the query/value matrices
and rank 2r on the embedding ... no significant gain", while full continued pretraining helps. To run that
comparison the model must train with its base weights frozen and a low-rank update ``ΔW = (α / r) · A B``
added to chosen matrices. The update is attached with ``torch.nn.utils.parametrize``: ``attn.W_Q`` still reads
as an ``[n_heads, d_model, d_head]`` tensor (now ``W + ΔW``), so every hook, cache and fused path of the model
works unchanged, and the model's files are not edited.

Each weight is seen as the linear map it implements (``x @ M``): ``W_Q/W_K/W_V [head, d_model, d_head]`` as
``d_model → head·d_head``; ``W_O [head, d_head, d_model]`` as ``head·d_head → d_model``; ``W_in``, ``W_out``
as they are; ``W_E [d_vocab, d_model]`` as a lookup table. ``A [in, r]`` starts random and ``B [r, out]`` at
zero, so a fresh adapter leaves the model's outputs exactly unchanged (LoRA's initialisation).

    >>> from plm_interp import HookedPLM, preset_config
    >>> model = HookedPLM(preset_config("tiny", d_vocab=8, n_ctx=16, seed=0))
    >>> adapters = apply_lora(model, LoRAConfig(rank=2, targets=("W_Q", "W_V")))
    >>> sorted({n.split(".")[-1] for n, p in model.named_parameters() if p.requires_grad})
    ['lora_A', 'lora_B']
    >>> merge_lora(model); unmerge_lora(model); remove_lora(model)   # fold in, take out, drop the adapters
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize

from plm_interp.config import ConfigError

from plm_interp.training.lora_config import ADAPTERS_FILE, TARGETS, LoRAConfig  # noqa: F401  (re-exported)


# ---- the adapter --------------------------------------------------------------------------------------------

def _as_matrix_shape(name: str, shape: torch.Size) -> tuple[int, int]:
    if name in ("W_Q", "W_K", "W_V"):
        h, d, e = shape
        return d, h * e
    if name == "W_O":
        h, e, d = shape
        return h * e, d
    return tuple(shape)


def _from_matrix(name: str, m: Float[torch.Tensor, "d_in d_out"], shape: torch.Size) -> torch.Tensor:
    if name in ("W_Q", "W_K", "W_V"):
        h, d, e = shape
        return m.reshape(d, h, e).permute(1, 0, 2)
    return m.reshape(shape)


class LoRAAdapter(nn.Module):
    """A parametrization ``W ↦ W + scale · A B`` (reshaped to ``W``'s layout); identity once merged."""

    def __init__(self, name: str, shape: torch.Size, rank: int, scale: float, generator: torch.Generator,
                 dtype: torch.dtype, device: torch.device):
        super().__init__()
        d_in, d_out = _as_matrix_shape(name, shape)
        self.name, self.shape, self.scale, self.merged = name, tuple(shape), scale, False
        a = torch.empty(d_in, rank, dtype=dtype)
        # LoRA's Kaiming-uniform A (fan-in = rank columns of the update's first factor); B = 0
        bound = 1 / math.sqrt(d_in)
        a.uniform_(-bound, bound, generator=generator)
        self.lora_A = nn.Parameter(a.to(device))
        self.lora_B = nn.Parameter(torch.zeros(rank, d_out, dtype=dtype, device=device))

    def delta(self) -> torch.Tensor:
        """``scale · A B`` in the weight's own layout."""
        return _from_matrix(self.name, self.scale * (self.lora_A @ self.lora_B), torch.Size(self.shape))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The weight the model sees: ``W + ΔW`` (``W`` alone once merged, since ``W`` then holds ``ΔW``)."""
        return weight if self.merged else weight + self.delta()


def _owners(model: nn.Module, target: str) -> list[tuple[str, nn.Module]]:
    if TARGETS[target] == "embed":
        return [("embed", model.embed)]
    return [(f"blocks.{i}.{TARGETS[target]}", getattr(block, TARGETS[target]))
            for i, block in enumerate(model.blocks)]


def adapters(model: nn.Module) -> dict[str, LoRAAdapter]:
    """``"blocks.0.attn.W_Q"`` → its adapter, for every adapter on ``model``."""
    out = {}
    for path, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for name, plist in module.parametrizations.items():
                for p in plist:
                    if isinstance(p, LoRAAdapter):
                        out[f"{path}.{name}"] = p
    return out


def apply_lora(model: nn.Module, cfg: LoRAConfig) -> dict[str, LoRAAdapter]:
    """Freeze every parameter of ``model`` and attach fresh adapters to ``cfg.targets``; returns them.

    A target the model lacks (``W_Q``/``W_K`` on the pos and uni schemes, which have no query or key) is an
    error naming it, rather than a silent no-op. Applying twice is refused (the second set would stack).
    """
    if adapters(model):
        raise ValueError("the model already has LoRA adapters; remove_lora(model) first")
    owners = {t: _owners(model, t) for t in cfg.targets}
    missing = [t for t, mods in owners.items() if not all(hasattr(m, t) for _, m in mods)]
    if missing:
        raise ConfigError(f"train.lora.targets: the model has no {missing} (positional scheme "
                          f"{getattr(getattr(model, 'cfg', None), 'positional', '?')!r})")
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed)
    for target in cfg.targets:
        rank = (cfg.embed_rank or 2 * cfg.rank) if target == "W_E" else cfg.rank
        for _, module in owners[target]:
            w = getattr(module, target)
            parametrize.register_parametrization(
                module, target, LoRAAdapter(target, w.shape, rank, cfg.scale, gen, w.dtype, w.device))
    return adapters(model)


@torch.no_grad()
def merge_lora(model: nn.Module) -> None:
    """Fold every adapter into its base weight (``W += ΔW``): the forward is unchanged, one matmul cheaper."""
    for module, name, adapter in _each(model):
        if not adapter.merged:
            module.parametrizations[name].original.add_(adapter.delta())
            adapter.merged = True


@torch.no_grad()
def unmerge_lora(model: nn.Module) -> None:
    """Undo :func:`merge_lora` (``W -= ΔW``), so the adapters can train again."""
    for module, name, adapter in _each(model):
        if adapter.merged:
            module.parametrizations[name].original.sub_(adapter.delta())
            adapter.merged = False


def remove_lora(model: nn.Module) -> None:
    """Merge and drop the adapters: ``model`` becomes a plain model (its state dict loads anywhere)."""
    merge_lora(model)
    for module, name, _ in list(_each(model)):
        parametrize.remove_parametrizations(module, name, leave_parametrized=False)
    for p in model.parameters():
        p.requires_grad_(True)


def _each(model: nn.Module):
    for path, adapter in adapters(model).items():
        owner_path, name = path.rsplit(".", 1)
        yield model.get_submodule(owner_path), name, adapter


def save_adapters(model: nn.Module, path: str | Path, cfg: LoRAConfig) -> Path:
    """Write the adapters (``<weight path>.lora_A`` / ``.lora_B``) and ``cfg`` (as metadata) to safetensors."""
    state = {}
    for key, adapter in adapters(model).items():
        if adapter.merged:
            raise ValueError(f"adapter {key} is merged; unmerge_lora(model) before saving adapters")
        state[f"{key}.lora_A"] = adapter.lora_A.detach().cpu().contiguous()
        state[f"{key}.lora_B"] = adapter.lora_B.detach().cpu().contiguous()
    if not state:
        raise ValueError("the model has no LoRA adapters to save")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "plm-interp-lora", "lora": json.dumps(cfg.to_dict())})
    return path


def load_adapters(model: nn.Module, path: str | Path) -> LoRAConfig:
    """Attach adapters to ``model`` (its base weights frozen) from a file written by :func:`save_adapters`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "plm-interp-lora":
        raise ValueError(f"{path}: not a plm-interp LoRA adapter file (metadata format {meta.get('format')!r})")
    cfg = LoRAConfig.from_dict(json.loads(meta["lora"]))
    found = apply_lora(model, cfg)
    state = load_file(str(path))
    expected = {f"{k}.{ab}" for k in found for ab in ("lora_A", "lora_B")}
    if set(state) != expected:
        raise ValueError(f"{path}: adapters {sorted(set(state) ^ expected)} do not match this model")
    with torch.no_grad():
        for key, adapter in found.items():
            for ab in ("lora_A", "lora_B"):
                getattr(adapter, ab).copy_(state[f"{key}.{ab}"])
    return cfg
