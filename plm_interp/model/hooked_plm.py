"""HookedPLM: the one transformer of plm-interp, on TransformerLens' HookedRootModule.

Read it top to bottom like nanoGPT: embed (+ absolute positions for ``abs``) → blocks → final LayerNorm →
unembed. Hook names, parameter names and shapes follow ``HookedTransformer``, so ``run_with_cache``,
``ActivationCache`` helpers and ``transformer_lens.patching`` work unchanged.

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
from plm_interp.model.hooks import HookPoint
from plm_interp.model.kv_cache import KVCache
from plm_interp.model.positional import PosEmbed
from plm_interp.model.weights import WeightViews


class HookedPLM(WeightViews, HookedRootModule):
    """The transformer with TransformerLens hook names and caches; ``cfg.positional`` picks the scheme."""
    def __init__(self, cfg: PLMConfig | dict[str, Any]):
        super().__init__()
        self.cfg = cfg if isinstance(cfg, PLMConfig) else PLMConfig.from_dict(cfg)
        cfg = self.cfg
        self.embed = Embed(cfg)
        self.hook_embed = HookPoint()
        if cfg.positional == "abs":
            self.pos_embed = PosEmbed(cfg)
            self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg)
        self.unembed = Unembed(cfg)
        self.init_weights()
        self.to(cfg.device)
        self.setup()

    def init_weights(self) -> None:
        """GPT-2 style: normal(0, initializer_range) for matrices, zeros for biases, ones for LN gains."""
        gen = torch.Generator().manual_seed(self.cfg.seed) if self.cfg.seed is not None else None
        for name, param in self.named_parameters():
            if param.dim() > 1:
                with torch.no_grad():
                    param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32)
                                * self.cfg.initializer_range)

    # -- forward -------------------------------------------------------------------------------------------
    def forward(
        self,
        input: Int[torch.Tensor, "batch pos"],
        return_type: Literal["logits", "loss", "both"] | None = "logits",
        loss_mask: torch.Tensor | None = None,
        targets: Int[torch.Tensor, "batch pos"] | None = None,
        past_kv_cache: KVCache | None = None,
        stop_at_layer: int | None = None,
    ):
        """Run the model.

        ``return_type="loss"`` gives next-token cross-entropy for the causal model (optionally masked: see
        :func:`lm_loss`) and masked-LM cross-entropy over ``targets != -100`` for the bidirectional encoder.
        With ``past_kv_cache`` the tokens continue the cached positions (used by :meth:`generate`).
        ``stop_at_layer=l`` returns the residual stream entering block ``l`` (as HookedTransformer), so probes
        pay only for the layers they read.
        """
        tokens = self.to_tokens(input)
        offset = 0 if past_kv_cache is None else past_kv_cache.length
        pos = torch.arange(offset, offset + tokens.shape[1], device=tokens.device)
        if offset + tokens.shape[1] > self.cfg.n_ctx:
            raise ValueError(f"sequence of {offset + tokens.shape[1]} tokens is longer than n_ctx = {self.cfg.n_ctx}")
        resid = self.hook_embed(self.embed(tokens))
        if self.cfg.positional == "abs":
            resid = resid + self.hook_pos_embed(self.pos_embed(pos, tokens.shape[0]))
        for i, block in enumerate(self.blocks[:stop_at_layer]):
            resid = block(resid, pos, None if past_kv_cache is None else past_kv_cache.entries[i])
        if stop_at_layer is not None:
            return resid
        if return_type is None:
            return None
        logits = self.unembed(self.ln_final(resid))
        if return_type == "logits":
            return logits
        loss = self.loss(logits, tokens, loss_mask=loss_mask, targets=targets)
        return loss if return_type == "loss" else (logits, loss)

    def loss(self, logits, tokens, loss_mask=None, targets=None) -> torch.Tensor:
        """The training loss of ``logits``: next-token cross-entropy on ``tokens`` (masked by ``loss_mask``, see
        :func:`lm_loss`) for the causal model, masked-LM cross-entropy on ``targets != -100`` for the
        bidirectional one."""
        if self.cfg.attention_dir == "bidirectional":
            if targets is None:
                raise ValueError("the bidirectional (masked-LM) model needs `targets` (-100 = not predicted)")
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)
        return lm_loss(logits, tokens, loss_mask)

    def run_with_cache(self, *model_args, return_cache_object: bool = True, remove_batch_dim: bool = False,
                       **kwargs):
        """As HookedTransformer: ``(output, ActivationCache)``; ``return_cache_object=False`` gives a dict."""
        out, cache_dict = super().run_with_cache(*model_args, remove_batch_dim=remove_batch_dim, **kwargs)
        if not return_cache_object:
            return out, cache_dict
        return out, ActivationCache(cache_dict, self, has_batch_dim=not remove_batch_dim)

    def to_tokens(self, input: Any, **_: Any) -> Int[torch.Tensor, "batch pos"]:
        """Token ids as a ``[batch, pos]`` LongTensor (text goes through the task's tokenizer first)."""
        if isinstance(input, torch.Tensor):
            if input.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"input tokens must be an integer tensor, got dtype {input.dtype}")
            tokens = input if input.dim() == 2 else input.unsqueeze(0)
            if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.cfg.d_vocab):
                raise ValueError(f"token ids must lie in [0, d_vocab={self.cfg.d_vocab}), got range "
                                 f"[{int(tokens.min())}, {int(tokens.max())}]")
            return tokens.to(self.W_E.device).long()
        raise TypeError(f"HookedPLM takes token-id tensors, got {type(input).__name__}; "
                        "tokenize text with the task's tokenizer (task.tokenizer.encode)")

    def to_single_token(self, token: int | str) -> int:
        """HookedTransformer's API, for TransformerLens utilities that call it: a token id passes through; a string
        raises ``TypeError``, as the model has no text tokenizer."""
        if isinstance(token, int):
            return token
        raise TypeError("HookedPLM has no string tokenizer; pass token ids")

    # -- decoding and checkpoints (thin wrappers over their own modules) ------------------------------------
    def generate(self, input, **kwargs):
        """Sample continuations; see :func:`plm_interp.generation.generate` for the arguments."""
        from plm_interp.generation import generate

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
) -> torch.Tensor:
    """Mean next-token cross-entropy; ``loss_mask[b, p]`` selects which *predicted* tokens ``p ≥ 1`` count."""
    pred = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    target = tokens[:, 1:].reshape(-1)
    if loss_mask is None:
        return F.cross_entropy(pred, target)
    per_token = F.cross_entropy(pred, target, reduction="none")
    mask = loss_mask[:, 1:].reshape(-1).to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp_min(1.0)
