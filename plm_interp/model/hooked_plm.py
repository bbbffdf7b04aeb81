"""HookedPLM: the one transformer of plm-interp, on TransformerLens' HookedRootModule.

Read it top to bottom like nanoGPT: embed (+ the scheme's residual embedding: ``W_pos`` for ``abs``) → blocks →
final LayerNorm → unembed. The positional scheme (``plm_interp/model/positional``) is the only indirection.
Hook names, parameter names, shapes, ``forward`` / ``generate`` signatures and the text methods follow
``HookedTransformer``, so ``run_with_cache``, ``ActivationCache`` helpers, ``transformer_lens.patching``,
sae-lens and nnsight work unchanged.

A new model is in eval mode: every hook point runs (see ``plm_interp/model/hooks.py`` for the fast path,
which the trainer's ``model.train()`` turns on).

Example:
    >>> import torch
    >>> from plm_interp import HookedPLM, PLMConfig
    >>> model = HookedPLM(PLMConfig(d_model=32, n_layers=2, n_heads=2, d_vocab=8, n_ctx=16, positional="rot"))
    >>> logits, cache = model.run_with_cache(torch.tensor([[1, 2, 3]]))
    >>> logits.shape, cache["blocks.1.attn.hook_pattern"].shape
    (torch.Size([1, 3, 8]), torch.Size([1, 2, 3, 3]))
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn
from transformer_lens import ActivationCache
from transformer_lens import HookedRootModule

from plm_interp.config import PLMConfig
from plm_interp.model.block import TransformerBlock
from plm_interp.model.components import Embed, LayerNorm, Unembed
from plm_interp.model.hooks import FAST_PATH_MODES, HookPoint
from plm_interp.model.kv_cache import KVCache
from plm_interp.model.positional import SCHEMES
from plm_interp.model.process_weights import ProcessWeights
from plm_interp.model.text import TextMixin
from plm_interp.model.weights import WeightViews

RETURN_TYPES = ("logits", "loss", "both", None)


class HookedPLM(WeightViews, TextMixin, ProcessWeights, HookedRootModule):
    """The transformer with TransformerLens hook names and caches; ``cfg.positional`` picks the scheme."""
    def __init__(self, cfg: PLMConfig | dict[str, Any]):
        super().__init__()
        self.cfg = cfg if isinstance(cfg, PLMConfig) else PLMConfig.from_dict(cfg)
        cfg = self.cfg
        self.embed = Embed(cfg)
        self.hook_embed = HookPoint()
        self.pos_embed = SCHEMES[cfg.positional].residual_embedding(cfg)  # None unless the scheme has one
        if self.pos_embed is not None:
            self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg)
        self.unembed = Unembed(cfg)
        self.init_weights()
        self.to(cfg.device)
        self.setup()
        self.eval()

    def init_weights(self) -> None:
        """GPT-2 style: normal(0, initializer_range) for matrices, zeros for biases, ones for LN gains."""
        gen = torch.Generator().manual_seed(self.cfg.seed) if self.cfg.seed is not None else None
        for name, param in self.named_parameters():
            if param.dim() > 1:
                with torch.no_grad():
                    param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32)
                                * self.cfg.initializer_range)

    @property
    def fast_path(self) -> str:
        """When fused attention / LayerNorm kernels may skip idle hook points: ``"train"`` (default: in
        training mode only), ``"off"`` or ``"on"``; see ``plm_interp/model/hooks.py``."""
        return getattr(self, "_fast_path", "train")

    @fast_path.setter
    def fast_path(self, mode: str) -> None:
        if mode not in FAST_PATH_MODES:
            raise ValueError(f"fast_path must be one of {list(FAST_PATH_MODES)}, got {mode!r}")
        self._fast_path = mode
        for module in self.modules():
            if hasattr(module, "fast_path") and module is not self:
                module.fast_path = mode

    # -- forward -------------------------------------------------------------------------------------------
    def forward(
        self,
        input: Int[torch.Tensor, "batch pos"] | Float[torch.Tensor, "batch pos d_model"] | str | list[str],
        return_type: Literal["logits", "loss", "both"] | None = "logits",
        loss_per_token: bool = False,
        prepend_bos: bool | None = None,
        padding_side: Literal["left", "right"] | None = None,
        start_at_layer: int | None = None,
        tokens: Int[torch.Tensor, "batch pos"] | None = None,
        shortformer_pos_embed: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        stop_at_layer: int | None = None,
        past_kv_cache: KVCache | None = None,
        loss_mask: torch.Tensor | None = None,
        targets: Int[torch.Tensor, "batch pos"] | None = None,
    ):
        """Run the model; the arguments are HookedTransformer's.

        ``input`` is token ids (``[pos]`` or ``[batch, pos]``) or text (task tokenizer; ``prepend_bos`` and
        ``padding_side`` apply to text only), or with ``start_at_layer=l`` the residual stream entering block
        ``l`` (pass ``tokens=`` for a loss). ``stop_at_layer=l`` returns the residual entering block ``l``, so
        probes pay only for the layers they read. ``return_type="loss"`` gives next-token cross-entropy for the
        causal model (``loss_mask`` selects the predicted tokens that count, see :func:`lm_loss`) and masked-LM
        cross-entropy over ``targets != -100`` for the bidirectional one; ``loss_per_token=True`` keeps it
        per position. With ``past_kv_cache`` the tokens continue the cached positions (used by
        :meth:`generate`). ``attention_mask`` may only be all ones: these models never attend over padding.
        """
        if return_type not in RETURN_TYPES:
            raise ValueError(f"return_type must be one of {list(RETURN_TYPES)}, got {return_type!r}")
        if shortformer_pos_embed is not None:
            raise ValueError("shortformer_pos_embed does not apply: no HookedPLM scheme is 'shortformer'")
        if start_at_layer is None:
            tokens = self.to_tokens(input, prepend_bos=prepend_bos, padding_side=padding_side)
            pos = self._positions(tokens.shape[1], past_kv_cache)
            resid = self.hook_embed(self.embed(tokens))
            if self.pos_embed is not None:
                resid = resid + self.hook_pos_embed(self.pos_embed(pos, tokens.shape[0]))
        else:
            resid = self._checked_resid(input, start_at_layer)
            tokens = None if tokens is None else self.to_tokens(tokens)
            pos = self._positions(resid.shape[1], past_kv_cache)
        if attention_mask is not None and not bool(torch.as_tensor(attention_mask).all()):
            raise ValueError("attention_mask has zeros: HookedPLM does not attend over padding; run rows of equal "
                             "length (generate() groups prompts by length)")
        first = start_at_layer or 0
        for i, block in enumerate(self.blocks[first:stop_at_layer], start=first):
            resid = block(resid, pos, None if past_kv_cache is None else past_kv_cache.entries[i])
        if stop_at_layer is not None:
            return resid
        if return_type is None:
            return None
        logits = self.unembed(self.ln_final(resid))
        if return_type == "logits":
            return logits
        if tokens is None and self.cfg.attention_dir == "causal":
            raise ValueError("return_type='loss' with start_at_layer needs the input tokens: pass tokens=")
        loss = self.loss(logits, tokens, loss_mask=loss_mask, targets=targets, per_token=loss_per_token)
        return loss if return_type == "loss" else (logits, loss)

    def _positions(self, length: int, past_kv_cache: KVCache | None) -> Int[torch.Tensor, "pos"]:
        offset = 0 if past_kv_cache is None else past_kv_cache.length
        if offset + length > self.cfg.n_ctx:
            raise ValueError(f"sequence of {offset + length} tokens is longer than n_ctx = {self.cfg.n_ctx}")
        return torch.arange(offset, offset + length, device=self.W_E.device)

    def _checked_resid(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        if not 0 <= layer <= self.cfg.n_layers:
            raise ValueError(f"start_at_layer = {layer} is outside [0, n_layers={self.cfg.n_layers}]")
        if not isinstance(resid, torch.Tensor) or resid.dim() != 3 or resid.shape[-1] != self.cfg.d_model \
                or 0 in resid.shape[:2]:
            shape = tuple(resid.shape) if isinstance(resid, torch.Tensor) else type(resid).__name__
            raise ValueError(f"with start_at_layer the input is the residual stream [batch, pos, d_model="
                             f"{self.cfg.d_model}], got {shape}")
        return resid

    def loss(self, logits, tokens, loss_mask=None, targets=None, per_token: bool = False) -> torch.Tensor:
        """The training loss of ``logits``: next-token cross-entropy on ``tokens`` (masked by ``loss_mask``, see
        :func:`lm_loss`) for the causal model, masked-LM cross-entropy on ``targets != -100`` for the
        bidirectional one. ``per_token`` keeps it per position (``[batch, pos - 1]`` causal, ``[batch, pos]``
        masked-LM, 0 where not predicted)."""
        if self.cfg.attention_dir == "bidirectional":
            if targets is None:
                raise ValueError("the bidirectional (masked-LM) model needs `targets` (-100 = not predicted)")
            flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                   ignore_index=-100, reduction="none" if per_token else "mean")
            return flat.view(targets.shape) if per_token else flat
        return lm_loss(logits, tokens, loss_mask, per_token=per_token)

    def run_with_cache(self, *model_args, return_cache_object: bool = True, remove_batch_dim: bool = False,
                       **kwargs):
        """As HookedTransformer: ``(output, ActivationCache)``; ``return_cache_object=False`` gives a dict."""
        out, cache_dict = super().run_with_cache(*model_args, remove_batch_dim=remove_batch_dim, **kwargs)
        if not return_cache_object:
            return out, cache_dict
        return out, ActivationCache(cache_dict, self, has_batch_dim=not remove_batch_dim)

    # -- decoding and checkpoints (thin wrappers over their own modules) ------------------------------------
    def generate(self, input, **kwargs):
        """Sample continuations with HookedTransformer's arguments; see :func:`plm_interp.generation.generate`.
        An argument it does not have (e.g. TL's ``output_logits``) is refused by name, not with a bare TypeError."""
        import inspect

        from plm_interp.generation import generate

        known = set(inspect.signature(generate).parameters) - {"model", "input"}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(f"generate() does not support {unknown} for HookedPLM; its arguments: {sorted(known)}")
        return generate(self, input, **kwargs)

    def save_pretrained(self, directory) -> None:
        """Write ``model.safetensors`` and ``config.json`` into ``directory`` (see
        :func:`plm_interp.checkpoint.save_model`)."""
        from plm_interp.checkpoint import save_model

        save_model(self, directory)

    @classmethod
    def from_pretrained(cls, directory, device: str | None = None) -> "HookedPLM":
        """Load a checkpoint written by :meth:`save_pretrained`, verified first (see
        :func:`plm_interp.checkpoint.load_model`); ``device`` overrides the saved one."""
        from plm_interp.checkpoint import load_model

        return load_model(directory, device=device)


def lm_loss(
    logits: Float[torch.Tensor, "batch pos d_vocab"],
    tokens: Int[torch.Tensor, "batch pos"],
    loss_mask: torch.Tensor | None = None,
    per_token: bool = False,
) -> torch.Tensor:
    """Mean next-token cross-entropy; ``loss_mask[b, p]`` selects which *predicted* tokens ``p ≥ 1`` count.
    ``per_token`` gives the ``[batch, pos - 1]`` losses instead (masked-out ones set to 0)."""
    pred = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    target = tokens[:, 1:].reshape(-1)
    if per_token:
        losses = F.cross_entropy(pred, target, reduction="none").view(tokens.shape[0], -1)
        return losses if loss_mask is None else losses * loss_mask[:, 1:].to(losses.dtype)
    if loss_mask is None:
        return F.cross_entropy(pred, target)
    per_token = F.cross_entropy(pred, target, reduction="none")
    mask = loss_mask[:, 1:].reshape(-1).to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp_min(1.0)
