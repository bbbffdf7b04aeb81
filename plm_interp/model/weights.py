"""HookedTransformer's weight surface: stacked per-layer views (``W_Q[layer, head, d_model, d_head]`` ...), the
factored circuits ``OV`` / ``QK`` and ``all_composition_scores`` (the Mathematical Framework's objects, used by
TL's Exploratory Analysis demo), ``tokens_to_residual_directions`` and ``accumulated_bias`` (used by
ActivationCache's helpers)."""
from __future__ import annotations

import torch
from jaxtyping import Float
from transformer_lens import FactoredMatrix


class WeightViews:
    """Mixin for :class:`HookedPLM`; needs ``self.blocks``, ``self.embed``, ``self.unembed``, ``self.cfg``."""

    def __getattr__(self, name: str):
        # A property that raises AttributeError falls through to here; say why instead of "no attribute".
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("W_Q", "W_K", "b_Q", "b_K", "QK"):
                raise AttributeError(f"the {self.cfg.positional!r} positional scheme has no {name}: its "
                                     "attention pattern depends on positions only (no queries or keys)") from None
            if name in ("W_pos", "W_E_pos"):
                raise AttributeError(f"{name} exists only for a scheme with a residual position embedding (abs); "
                                     f"this model's {self.cfg.positional!r} has none") from None
            raise

    def _stack(self, module: str, name: str) -> torch.Tensor:
        return torch.stack([getattr(getattr(b, module), name) for b in self.blocks])

    W_Q = property(lambda self: self._stack("attn", "W_Q"))
    W_K = property(lambda self: self._stack("attn", "W_K"))
    W_V = property(lambda self: self._stack("attn", "W_V"))
    W_O = property(lambda self: self._stack("attn", "W_O"))
    b_Q = property(lambda self: self._stack("attn", "b_Q"))
    b_K = property(lambda self: self._stack("attn", "b_K"))
    b_V = property(lambda self: self._stack("attn", "b_V"))
    b_O = property(lambda self: self._stack("attn", "b_O"))
    W_in = property(lambda self: self._stack("mlp", "W_in"))
    W_out = property(lambda self: self._stack("mlp", "W_out"))
    b_in = property(lambda self: self._stack("mlp", "b_in"))
    b_out = property(lambda self: self._stack("mlp", "b_out"))

    @property
    def OV(self) -> FactoredMatrix:
        """The OV circuits ``W_V @ W_O`` of every head, ``[n_layers, n_heads, d_model, d_model]``, factored."""
        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def QK(self) -> FactoredMatrix:
        """The QK circuits ``W_Q @ W_K^T`` of every head, ``[n_layers, n_heads, d_model, d_model]``, factored. As in
        TL, positional terms (rotary's rotation, rel's relative scores) are not part of it."""
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    def all_composition_scores(self, mode: str) -> Float[torch.Tensor, "n_layers n_heads n_layers n_heads"]:
        """Composition scores of every pair of heads (Elhage et al. 2021), as HookedTransformer: ``mode`` "Q", "K"
        or "V" composition of head ``[l1, h1]``'s OV into head ``[l2, h2]``; zero unless ``l1 < l2``."""
        from transformer_lens.utilities import composition_scores

        if mode not in ("Q", "K", "V"):
            raise ValueError(f"mode must be one of ['Q', 'K', 'V'], got {mode!r}")
        right = {"Q": lambda: self.QK, "K": lambda: self.QK.T, "V": lambda: self.OV}[mode]()
        scores = composition_scores(self.OV, right, broadcast_dims=True)
        layer = torch.arange(self.cfg.n_layers, device=scores.device)
        return torch.where(layer[:, None, None, None] < layer[None, None, :, None], scores, torch.zeros_like(scores))

    @property
    def W_E(self) -> Float[torch.Tensor, "d_vocab d_model"]:
        return self.embed.W_E

    @property
    def W_U(self) -> Float[torch.Tensor, "d_model d_vocab_out"]:
        return self.unembed.W_U

    @property
    def b_U(self) -> Float[torch.Tensor, "d_vocab_out"]:
        return self.unembed.b_U

    @property
    def W_pos(self) -> Float[torch.Tensor, "n_ctx d_model"]:
        if self.pos_embed is None:
            raise AttributeError(f"W_pos exists only for a scheme with a residual position embedding (this model's "
                                 f"{self.cfg.positional!r} has none)")
        return self.pos_embed.W_pos

    @property
    def W_E_pos(self) -> Float[torch.Tensor, "vocab_and_pos d_model"]:
        """``W_E`` and ``W_pos`` stacked (TL's view for a full OV circuit over tokens and positions); only for the
        scheme with a residual position embedding (abs), like ``W_pos``."""
        return torch.cat([self.W_E, self.W_pos], dim=0)

    def tokens_to_residual_directions(self, tokens) -> torch.Tensor:
        """Unembedding direction(s) of token(s): ``W_U[:, t]`` (shape ``[d_model]`` or ``[..., d_model]``); a token
        may be given as its string (one token of the task tokenizer), as in HookedTransformer."""
        if isinstance(tokens, str):
            tokens = self.to_single_token(tokens)
        if isinstance(tokens, int):
            return self.W_U[:, tokens]
        tokens = torch.as_tensor(tokens, device=self.W_U.device)
        directions = self.W_U[:, tokens.reshape(-1)].T
        return directions.reshape(*tokens.shape, -1) if tokens.dim() else directions[0]

    def accumulated_bias(self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True) -> torch.Tensor:
        """Sum of the attention-output (and MLP-output) biases written into the residual before ``layer``."""
        acc = torch.zeros(self.cfg.d_model, device=self.W_E.device, dtype=self.W_E.dtype)
        for block in self.blocks[:layer]:
            acc = acc + block.attn.b_O + (block.mlp.b_out if include_mlp_biases else 0)
        if mlp_input:
            acc = acc + self.blocks[layer].attn.b_O
        return acc

    def all_head_labels(self) -> list[str]:
        return [f"L{l}H{h}" for l in range(self.cfg.n_layers) for h in range(self.cfg.n_heads)]
