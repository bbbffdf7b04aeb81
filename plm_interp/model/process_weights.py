"""HookedTransformer's weight processing (``fold_layer_norm``, ``center_writing_weights``, ``center_unembed``,
``fold_value_biases``, ``load_and_process_state_dict``, ``process_weights_``) for HookedPLM.

Each rewrite leaves the model's function unchanged (logits exactly, up to float rounding; ``center_unembed``
shifts each position's logits by a constant, so log-probs are unchanged) and makes the residual stream easier
to read: after ``fold_layer_norm`` every LayerNorm has w = 1 and b = 0, so ``hook_normalized`` is the input of
the next linear map and ``ActivationCache.logit_attrs`` / ``decompose_resid`` add up to the logits.

Two forms, as TransformerLens has them:

* TL's signatures take a state dict and return the processed copy (``sd = model.fold_layer_norm(sd)``), leaving
  the model alone; ``load_and_process_state_dict(sd, ...)`` processes one and loads it; ``process_weights_()``
  processes the model's own weights and sets ``cfg.normalization_type = "LNPre"``.
* Called with no state dict, each step rewrites the model in place (this library's older form, kept).

Unlike TransformerLens the LayerNorm modules stay (with w = 1, b = 0) rather than becoming ``LayerNormPre``, and
a processed state dict keeps their keys, so the fast path, checkpoints, ``load_state_dict`` and every hook name
keep working; ``cfg.normalization_type`` says "LNPre" as TL's does.
"""
from __future__ import annotations

from typing import Callable

import torch

StateDict = dict[str, torch.Tensor]


class ProcessWeights:
    """Mixin for :class:`~plm_interp.model.HookedPLM` (needs ``blocks``, ``ln_final``, ``embed``, ``unembed``)."""

    def fold_layer_norm(self, state_dict: StateDict | None = None, fold_biases: bool = True,
                        center_weights: bool = True) -> StateDict | None:
        """Fold each LayerNorm's w (and b, with ``fold_biases``) into the weights that read its output.

        LN(x) = n(x) * w + b with n(x) = centred x / scale, so W(LN(x)) + b_W = n(x) (w[:, None] W) + (b W + b_W).
        With ``center_weights`` the folded reading weights are also centred over d_model: n(x) sums to zero, so
        a constant added along d_model changes nothing. Returns the processed copy of ``state_dict`` (TL); with
        no state dict, folds the model in place.
        """
        out = self._process(state_dict, lambda sd: _fold_layer_norm(sd, self.cfg.n_layers, fold_biases,
                                                                     center_weights), "fold_layer_norm")
        if state_dict is None and fold_biases:  # the model's own LayerNorms are now w = 1, b = 0: TL's LNPre
            self.cfg.normalization_type = "LNPre"
        return out

    def center_writing_weights(self, state_dict: StateDict | None = None) -> StateDict | None:
        """Remove the mean over d_model from everything that writes to the residual stream (W_E, W_pos, W_O,
        b_O, W_out, b_out). Every reader of the residual stream is a LayerNorm, which removes that mean anyway."""
        return self._process(state_dict, lambda sd: _center_writing_weights(sd, self.cfg.n_layers),
                             "center_writing_weights")

    def center_unembed(self, state_dict: StateDict | None = None) -> StateDict | None:
        """Remove the mean over the vocabulary from W_U and b_U: each position's logits shift by one constant,
        so the softmax (and every logit difference) is unchanged."""
        return self._process(state_dict, _center_unembed, "center_unembed")

    def fold_value_biases(self, state_dict: StateDict | None = None) -> StateDict | None:
        """Move b_V into b_O: every attention pattern row sums to one, so each head adds b_V[h] W_O[h] at every
        position whatever it attends to."""
        return self._process(state_dict, lambda sd: _fold_value_biases(sd, self.cfg.n_layers), "fold_value_biases")

    def load_and_process_state_dict(self, state_dict: StateDict, fold_ln: bool = True,
                                    center_writing_weights: bool = True, center_unembed: bool = True,
                                    fold_value_biases: bool = True,
                                    refactor_factored_attn_matrices: bool = False) -> None:
        """TL's ``load_and_process_state_dict``: process ``state_dict`` (the steps above, in TL's order) and load
        it into the model; with ``fold_ln`` the config then says ``normalization_type = "LNPre"``."""
        if refactor_factored_attn_matrices:
            raise NotImplementedError("refactor_factored_attn_matrices is not supported by HookedPLM (rotary and "
                                      "relative schemes do not factor as W_Q W_K^T)")
        sd = _copy(state_dict)
        if fold_ln:
            _fold_layer_norm(sd, self.cfg.n_layers, True, True)
        if center_writing_weights:
            _center_writing_weights(sd, self.cfg.n_layers)
        if center_unembed:
            _center_unembed(sd)
        if fold_value_biases:
            _fold_value_biases(sd, self.cfg.n_layers)
        self.load_state_dict(sd)
        if fold_ln:
            self.cfg.normalization_type = "LNPre"

    def process_weights_(self, fold_ln: bool = True, center_writing_weights: bool = True,
                         center_unembed: bool = True, fold_value_biases: bool = True,
                         refactor_factored_attn_matrices: bool = False) -> "ProcessWeights":
        """All of the above on the model's own weights, in TransformerLens' order (in place); returns the model."""
        self.load_and_process_state_dict(self.state_dict(), fold_ln=fold_ln,
                                         center_writing_weights=center_writing_weights,
                                         center_unembed=center_unembed, fold_value_biases=fold_value_biases,
                                         refactor_factored_attn_matrices=refactor_factored_attn_matrices)
        return self

    process_weights = process_weights_

    @torch.no_grad()
    def _process(self, state_dict, step: Callable[[StateDict], None], name: str) -> StateDict | None:
        """Run ``step`` on a copy of ``state_dict`` and return it, or (no state dict) on the live parameters."""
        if state_dict is None:
            step(dict(self.named_parameters()))
            return None
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}'s first argument is a state dict, as in TransformerLens (it returns the "
                            f"processed copy); got {type(state_dict).__name__}. Call {name}() with no state dict "
                            "to process the model in place, and pass other options by keyword")
        sd = _copy(state_dict)
        step(sd)
        return sd


def _copy(state_dict: StateDict) -> StateDict:
    return {k: v.detach().clone() for k, v in state_dict.items()}


@torch.no_grad()
def _fold_layer_norm(sd: StateDict, n_layers: int, fold_biases: bool, center_weights: bool) -> None:
    for l in range(n_layers):
        attn = f"blocks.{l}.attn."
        names = ["Q", "K", "V"] if attn + "W_Q" in sd else ["V"]  # pos / uni heads have no W_Q, W_K
        _fold_ln_into(sd, f"blocks.{l}.ln1.", [(attn + "W_" + n, attn + "b_" + n, "hdm") for n in names],
                      fold_biases, center_weights)
        _fold_ln_into(sd, f"blocks.{l}.ln2.", [(f"blocks.{l}.mlp.W_in", f"blocks.{l}.mlp.b_in", "dm")],
                      fold_biases, center_weights)
    _fold_ln_into(sd, "ln_final.", [("unembed.W_U", "unembed.b_U", "dm")], fold_biases, center_weights)


def _fold_ln_into(sd: StateDict, ln: str, readers, fold_biases: bool, center_weights: bool) -> None:
    w, b = sd[ln + "w"], sd[ln + "b"]
    for weight_name, bias_name, layout in readers:
        # layout "hdm": [head, d_model, d_head]; "dm": [d_model, out]
        weight, bias = sd[weight_name], sd[bias_name]
        if fold_biases:
            bias.add_(torch.einsum("d,hde->he", b, weight) if layout == "hdm" else b @ weight)
        d_axis = 1 if layout == "hdm" else 0
        shape = [1] * weight.dim()
        shape[d_axis] = -1
        weight.mul_(w.view(shape))
        if center_weights:
            weight.sub_(weight.mean(d_axis, keepdim=True))
    w.fill_(1.0)
    if fold_biases:
        b.zero_()


@torch.no_grad()
def _center_writing_weights(sd: StateDict, n_layers: int) -> None:
    writers = ["embed.W_E"] + (["pos_embed.W_pos"] if "pos_embed.W_pos" in sd else [])
    for l in range(n_layers):
        writers += [f"blocks.{l}.attn.W_O", f"blocks.{l}.attn.b_O", f"blocks.{l}.mlp.W_out", f"blocks.{l}.mlp.b_out"]
    for name in writers:
        sd[name].sub_(sd[name].mean(-1, keepdim=True))


@torch.no_grad()
def _center_unembed(sd: StateDict) -> None:
    sd["unembed.W_U"].sub_(sd["unembed.W_U"].mean(-1, keepdim=True))
    sd["unembed.b_U"].sub_(sd["unembed.b_U"].mean())


@torch.no_grad()
def _fold_value_biases(sd: StateDict, n_layers: int) -> None:
    for l in range(n_layers):
        attn = f"blocks.{l}.attn."
        sd[attn + "b_O"].add_(torch.einsum("he,hed->d", sd[attn + "b_V"], sd[attn + "W_O"]))
        sd[attn + "b_V"].zero_()
