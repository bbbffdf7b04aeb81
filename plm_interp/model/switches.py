"""HookedTransformer's opt-in hook switches: ``set_use_attn_result``, ``set_use_split_qkv_input``,
``set_use_attn_in``, ``set_use_hook_mlp_in``.

Each turns on hook points that cost memory (a ``[batch, pos, head_index, d_model]`` tensor per layer), so, as in
TransformerLens, they are off by default and set on the model's config (``cfg.use_attn_result`` ...), which every
block reads. They are session state: a checkpoint's ``config.json`` does not record them. With them on the model
computes the same logits (up to float rounding): the per-head tensors are summed back before they reach the
residual stream.
"""
from __future__ import annotations


class HookSwitches:
    """Mixin for :class:`~plm_interp.model.HookedPLM`."""

    def set_use_attn_result(self, use_attn_result: bool) -> None:
        """Cache each head's output at ``blocks.{l}.attn.hook_result`` ``[batch, pos, head_index, d_model]``
        (``cache["result", l]``; ``cache.stack_head_results`` then reads it instead of recomputing)."""
        self.cfg.use_attn_result = _flag("use_attn_result", use_attn_result)

    def set_use_split_qkv_input(self, use_split_qkv_input: bool) -> None:
        """Give each head its own copy of the residual for its query, key and value inputs, at
        ``blocks.{l}.hook_q_input`` / ``hook_k_input`` / ``hook_v_input`` ``[batch, pos, head_index, d_model]``, so
        path patching can edit one head's query input alone."""
        self.cfg.use_split_qkv_input = _flag("use_split_qkv_input", use_split_qkv_input)

    def set_use_attn_in(self, use_attn_in: bool) -> None:
        """One per-head copy of the residual for all of a head's inputs, at ``blocks.{l}.hook_attn_in``."""
        self.cfg.use_attn_in = _flag("use_attn_in", use_attn_in)

    def set_use_hook_mlp_in(self, use_hook_mlp_in: bool) -> None:
        """Expose the MLP's input (the residual before ``ln2``) at ``blocks.{l}.hook_mlp_in``."""
        self.cfg.use_hook_mlp_in = _flag("use_hook_mlp_in", use_hook_mlp_in)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"set_{name} takes a bool, got {value!r}")
    return value
