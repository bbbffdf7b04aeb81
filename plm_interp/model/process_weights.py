"""HookedTransformer's weight processing (``fold_layer_norm``, ``center_writing_weights``, ``center_unembed``,
``fold_value_biases``, ``process_weights``) for HookedPLM.

Each rewrite leaves the model's function unchanged (logits exactly, up to float rounding; ``center_unembed``
shifts each position's logits by a constant, so log-probs are unchanged) and makes the residual stream easier
to read: after ``fold_layer_norm`` every LayerNorm has w = 1 and b = 0, so ``hook_normalized`` is the input of
the next linear map and ``ActivationCache.logit_attrs`` / ``decompose_resid`` add up to the logits. Unlike
TransformerLens the LayerNorm modules stay (with w = 1, b = 0) rather than becoming ``LayerNormPre``, so the
fast path, checkpoints and every hook name keep working.
"""
from __future__ import annotations

import torch


class ProcessWeights:
    """Mixin for :class:`~plm_interp.model.HookedPLM` (needs ``blocks``, ``ln_final``, ``embed``, ``unembed``)."""

    @torch.no_grad()
    def fold_layer_norm(self, fold_biases: bool = True, center_weights: bool = True) -> None:
        """Fold each LayerNorm's w (and b, with ``fold_biases``) into the weights that read its output.

        LN(x) = n(x) * w + b with n(x) = centred x / scale, so W(LN(x)) + b_W = n(x) (w[:, None] W) + (b W + b_W).
        With ``center_weights`` the folded reading weights are also centred over d_model: n(x) sums to zero, so
        a constant added along d_model changes nothing.
        """
        for block in self.blocks:
            attn = block.attn
            names = ["W_Q", "W_K", "W_V"] if attn.positional.uses_qk else ["W_V"]
            self._fold_ln_into(block.ln1, [(getattr(attn, n), getattr(attn, "b" + n[1:]), "hdm") for n in names],
                               fold_biases, center_weights)
            self._fold_ln_into(block.ln2, [(block.mlp.W_in, block.mlp.b_in, "dm")], fold_biases, center_weights)
        self._fold_ln_into(self.ln_final, [(self.unembed.W_U, self.unembed.b_U, "dm")], fold_biases, center_weights)

    @staticmethod
    def _fold_ln_into(ln, readers, fold_biases: bool, center_weights: bool) -> None:
        for weight, bias, layout in readers:
            # layout "hdm": [head, d_model, d_head]; "dm": [d_model, out]
            if fold_biases:
                bias.add_(torch.einsum("d,hde->he", ln.b, weight) if layout == "hdm" else ln.b @ weight)
            d_axis = 1 if layout == "hdm" else 0
            shape = [1] * weight.dim()
            shape[d_axis] = -1
            weight.mul_(ln.w.view(shape))
            if center_weights:
                weight.sub_(weight.mean(d_axis, keepdim=True))
        ln.w.fill_(1.0)
        if fold_biases:
            ln.b.zero_()

    @torch.no_grad()
    def center_writing_weights(self) -> None:
        """Remove the mean over d_model from everything that writes to the residual stream (W_E, W_pos, W_O,
        b_O, W_out, b_out). Every reader of the residual stream is a LayerNorm, which removes that mean anyway."""
        writers = [self.embed.W_E] + ([self.pos_embed.W_pos] if self.pos_embed is not None else [])
        for block in self.blocks:
            writers += [block.attn.W_O, block.attn.b_O, block.mlp.W_out, block.mlp.b_out]
        for w in writers:
            w.sub_(w.mean(-1, keepdim=True))

    @torch.no_grad()
    def center_unembed(self) -> None:
        """Remove the mean over the vocabulary from W_U and b_U: each position's logits shift by one constant,
        so the softmax (and every logit difference) is unchanged."""
        self.unembed.W_U.sub_(self.unembed.W_U.mean(-1, keepdim=True))
        self.unembed.b_U.sub_(self.unembed.b_U.mean())

    @torch.no_grad()
    def fold_value_biases(self) -> None:
        """Move b_V into b_O: every attention pattern row sums to one, so each head adds b_V[h] W_O[h] at every
        position whatever it attends to."""
        for block in self.blocks:
            attn = block.attn
            attn.b_O.add_(torch.einsum("he,hed->d", attn.b_V, attn.W_O))
            attn.b_V.zero_()

    def process_weights_(self, fold_ln: bool = True, center_writing_weights: bool = True,
                         center_unembed: bool = True, fold_value_biases: bool = True) -> "ProcessWeights":
        """All of the above in TransformerLens' order (in place); returns the model."""
        if fold_ln:
            self.fold_layer_norm()
        if center_writing_weights:
            self.center_writing_weights()
        if center_unembed:
            self.center_unembed()
        if fold_value_biases:
            self.fold_value_biases()
        return self

    process_weights = process_weights_
