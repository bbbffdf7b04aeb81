"""HookedPLM: the one transformer of plm-interp, on TransformerLens' HookedRootModule.

Read it top to bottom like nanoGPT: :meth:`HookedPLM.forward` embeds (+ the scheme's residual embedding, abs's
``W_pos``), runs the blocks (:class:`TransformerBlock`, at the bottom of this file: ln1 → attention → ln2 → MLP)
and the final LayerNorm and unembedding. The positional scheme inside attention (``plm_interp/model/positional``)
is the only indirection; the surface around the forward pass (loss and caches in ``surface.py``, text in
``text.py``, weight views and processing in ``weights.py`` / ``process_weights.py``) is mixed in. Hook names, parameter names, shapes, ``forward`` / ``generate`` signatures and the text methods follow
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

import copy
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import nn
from transformer_lens import HookedRootModule

from plm_interp.model.config import PLMConfig
from plm_interp.model.attention import Attention
from plm_interp.model.components import MLP, Embed, LayerNorm, Unembed
from plm_interp.model.hooks import FAST_PATH_MODES, HookPoint
from plm_interp.model.kv_cache import KVCache, KVCacheEntry
from plm_interp.model.positional import SCHEMES
from plm_interp.model.process_weights import ProcessWeights
from plm_interp.model.surface import Surface
from plm_interp.model.switches import HookSwitches
from plm_interp.model.text import TextMixin
from plm_interp.model.weights import WeightViews

RETURN_TYPES = ("logits", "loss", "both", None)


class HookedPLM(Surface, WeightViews, TextMixin, ProcessWeights, HookSwitches, HookedRootModule):
    """The transformer with TransformerLens hook names and caches; ``cfg.positional`` picks the scheme."""
    def __init__(self, cfg: PLMConfig | dict[str, Any]):
        super().__init__()
        # a copy: the hook switches and process_weights_ write to the model's cfg, which must not reach another
        # model built from the same config object (a random-init control, a twin)
        self.cfg = copy.copy(cfg) if isinstance(cfg, PLMConfig) else PLMConfig.from_dict(cfg)
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
        if str(cfg.device).startswith(("cuda", "mps")):  # a named error, not torch's AssertionError
            from plm_interp.validation import check_device_available
            check_device_available(str(cfg.device), "config field 'device'")
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
        # shapes vary (``[pos]``, ``[batch, pos]``, a residual with start_at_layer): to_tokens checks them and
        # names the bad shape, which a type annotation could not do
        input: torch.Tensor | str | list[str],
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
        self._check_layer_arg("stop_at_layer", stop_at_layer, -self.cfg.n_layers)
        self._check_layer_arg("start_at_layer", start_at_layer, 0)
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

    def _check_layer_arg(self, name: str, value: int | None, lowest: int) -> None:
        """``value`` is None or an int in ``[lowest, n_layers]`` (negative counts from the end, as in
        TransformerLens): ``stop_at_layer=-99`` would slice away every block and return the embeddings."""
        n = self.cfg.n_layers
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} = {value!r} must be an int layer index (or None)")
        if not lowest <= value <= n:
            raise ValueError(f"{name} = {value} is outside [{lowest}, {n}] for this {n}-layer model"
                             + (f" (negative values count from the end, down to -{n})" if lowest < 0 else ""))

    def _checked_resid(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        if not 0 <= layer <= self.cfg.n_layers:
            raise ValueError(f"start_at_layer = {layer} is outside [0, n_layers={self.cfg.n_layers}]")
        if not isinstance(resid, torch.Tensor) or resid.dim() != 3 or resid.shape[-1] != self.cfg.d_model \
                or 0 in resid.shape[:2]:
            shape = tuple(resid.shape) if isinstance(resid, torch.Tensor) else type(resid).__name__
            raise ValueError(f"with start_at_layer the input is the residual stream [batch, pos, d_model="
                             f"{self.cfg.d_model}], got {shape}")
        return resid


class TransformerBlock(nn.Module):
    """One pre-LayerNorm block with TransformerLens' residual-stream hooks: attention reads ln1(resid) and
    writes to the residual stream, then the MLP reads ln2(resid) and writes to it."""

    def __init__(self, cfg: PLMConfig):
        super().__init__()
        self.cfg = cfg  # the model's config object: its hook switches (cfg.use_split_qkv_input ...) apply here
        self.ln1 = LayerNorm(cfg)
        self.attn = Attention(cfg)  # the positional scheme lives inside: the one indirection
        self.ln2 = LayerNorm(cfg)
        self.mlp = MLP(cfg)
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()
        # TL's opt-in hooks (model.set_use_split_qkv_input / set_use_attn_in / set_use_hook_mlp_in):
        # [batch, pos, head_index, d_model] copies of the residual per head, and the MLP's input
        self.hook_q_input, self.hook_k_input, self.hook_v_input = HookPoint(), HookPoint(), HookPoint()
        self.hook_attn_in = HookPoint()
        self.hook_mlp_in = HookPoint()

    def forward(
        self,
        resid: Float[torch.Tensor, "batch pos d_model"],
        pos: Int[torch.Tensor, "pos"],
        cache: KVCacheEntry | None = None,
    ) -> Float[torch.Tensor, "batch pos d_model"]:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(self._attn_input(resid), pos, cache)))
        mlp_in = self.hook_mlp_in(resid.clone()) if self.cfg.use_hook_mlp_in else resid
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(self.ln2(mlp_in))))

    def _attn_input(self, resid: torch.Tensor):
        """ln1(resid); with TL's split-input switches, a (query, key, value) triple of per-head copies
        ``[batch, pos, head_index, d_model]`` through ``hook_attn_in`` / ``hook_q_input`` ..., so one head's input
        can be patched alone (the sum over heads is unchanged until a hook edits one)."""
        if not (self.cfg.use_split_qkv_input or self.cfg.use_attn_in):
            return self.ln1(resid)
        per_head = resid.unsqueeze(-2).expand(-1, -1, self.cfg.n_heads, -1)
        if self.cfg.use_split_qkv_input:
            q, k, v = self.hook_q_input(per_head.clone()), self.hook_k_input(per_head.clone()), \
                self.hook_v_input(per_head.clone())
        else:
            q = k = v = self.hook_attn_in(per_head.clone())
        return self.ln1(q), self.ln1(k), self.ln1(v)
