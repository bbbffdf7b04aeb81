"""Multi-head attention with TransformerLens hook names and a fused fast path.

Hooks and layouts (as in TransformerLens): ``hook_q/k/v/z`` ``[batch, pos, head_index, d_head]``,
``hook_rot_q/k`` (rotary only), ``hook_attn_scores`` and ``hook_pattern`` ``[batch, head_index, query_pos,
key_pos]``; scores are the real pre-softmax scores, already masked with −inf.

Fast path: q, k, v and z exist in both paths (so their hooks work either way); only the score/pattern
tensors do not. When the fused kernels may run is decided by ``plm_interp/model/hooks.py`` (training mode and no
TransformerLens hook on scores/pattern, by default); then attention runs through
``scaled_dot_product_attention`` (abs, rot, none; rel with its positional bias as an additive mask), or as a
single batch-independent pattern times the values (pos, uni). Otherwise the explicit path forms every tensor
(scores and softmax in float32 for half dtypes, as the fused kernel accumulates). ``tests/test_model_fast_path.py``
checks that both paths agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn
from transformer_lens import FactoredMatrix

from plm_interp.model.config import PLMConfig
from plm_interp.model.hooks import HookPoint, use_fused
from plm_interp.model.kv_cache import KVCacheEntry
from plm_interp.model.positional import attention_positional


class Attention(nn.Module):
    fast_path = "train"  # see plm_interp/model/hooks.py; HookedPLM.fast_path sets it

    def __init__(self, cfg: PLMConfig):
        super().__init__()
        self.cfg = cfg
        h, d, e, dt = cfg.n_heads, cfg.d_model, cfg.d_head, cfg.torch_dtype
        self.positional = attention_positional(cfg)
        if self.positional.uses_qk:
            self.W_Q = nn.Parameter(torch.empty(h, d, e, dtype=dt))
            self.W_K = nn.Parameter(torch.empty(h, d, e, dtype=dt))
            self.b_Q = nn.Parameter(torch.zeros(h, e, dtype=dt))
            self.b_K = nn.Parameter(torch.zeros(h, e, dtype=dt))
        self.W_V = nn.Parameter(torch.empty(h, d, e, dtype=dt))
        self.b_V = nn.Parameter(torch.zeros(h, e, dtype=dt))
        self.W_O = nn.Parameter(torch.empty(h, e, d, dtype=dt))
        self.b_O = nn.Parameter(torch.zeros(d, dtype=dt))
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_rot_q, self.hook_rot_k = HookPoint(), HookPoint()
        self.hook_attn_scores, self.hook_pattern = HookPoint(), HookPoint()
        self.hook_z = HookPoint()
        self.hook_result = HookPoint()  # [batch, pos, head_index, d_model], only with cfg.use_attn_result
        self.causal = cfg.attention_dir == "causal"

    @property
    def OV(self) -> FactoredMatrix:
        """This layer's OV circuits ``W_V @ W_O``, ``[n_heads, d_model, d_model]``, factored (as TL)."""
        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def QK(self) -> FactoredMatrix:
        """This layer's QK circuits ``W_Q @ W_K^T``, ``[n_heads, d_model, d_model]``, factored (as TL; positional
        terms are not part of it). pos/uni heads have no W_Q / W_K (see ``__getattr__``)."""
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    def __getattr__(self, name: str):
        # nn.Module's lookup of a missing W_Q (or a property failing on it) ends here: say why it is missing
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("W_Q", "W_K", "b_Q", "b_K", "QK"):
                raise AttributeError(f"the {self.cfg.positional!r} positional scheme has no {name}: its attention "
                                     "pattern depends on positions only (no queries or keys)") from None
            raise

    def forward(
        self,
        # [batch, pos, d_model]; or, with cfg.use_split_qkv_input / use_attn_in, a (query, key, value) triple of
        # per-head inputs [batch, pos, head_index, d_model] (TL's hook_q_input ... layout)
        x: Float[torch.Tensor, "batch pos d_model"] | tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        q_pos: Int[torch.Tensor, "pos"],
        cache: KVCacheEntry | None = None,
    ) -> Float[torch.Tensor, "batch pos d_model"]:
        q, k, v = self._project_split(*x) if isinstance(x, tuple) else self._project(x)
        if self.positional.rotates:
            q, k = self.positional.rotate(q, k, q_pos, q_pos)  # new keys sit at the new positions
            q, k = self.hook_rot_q(q), self.hook_rot_k(k)
        if cache is not None:
            k, v = cache.append(k, v)
        k_pos = torch.arange(v.shape[1], device=v.device)
        if use_fused(self, self.hook_attn_scores, self.hook_pattern):
            z = self._fast(q, k, v, q_pos, k_pos)
        else:
            z = self._explicit(q, k, v, q_pos, k_pos)
        z = self.hook_z(z)
        if self.cfg.use_attn_result:  # TL's per-head outputs: memory [batch, pos, head, d_model], opt-in
            result = self.hook_result(torch.einsum("bqhe,hed->bqhd", z, self.W_O))
            return result.sum(-2) + self.b_O
        b, p = z.shape[:2]
        w_o = self.W_O.reshape(-1, self.cfg.d_model)  # [head*d_head, d_model], a view
        return torch.addmm(self.b_O, z.reshape(b * p, -1), w_o).view(b, p, -1)

    # -- projections ---------------------------------------------------------------------------------------
    def _project(self, x):
        h, e = self.cfg.n_heads, self.cfg.d_head
        names = ("W_Q", "W_K", "W_V") if self.positional.uses_qk else ("W_V",)
        weight = torch.cat([getattr(self, n) for n in names], dim=0)  # [n*head, d_model, d_head]
        bias = torch.cat([getattr(self, "b" + n[1:]) for n in names], dim=0).reshape(-1)
        weight = weight.permute(1, 0, 2).reshape(x.shape[-1], -1)
        out = torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight).view(*x.shape[:-1], len(names), h, e)
        v = self.hook_v(out[..., -1, :, :])
        if not self.positional.uses_qk:
            return None, None, v
        return self.hook_q(out[..., 0, :, :]), self.hook_k(out[..., 1, :, :]), v

    def _project_split(self, q_in, k_in, v_in):
        """q, k, v from separate per-head inputs ``[batch, pos, head, d_model]`` (the use_split_qkv_input path)."""
        def proj(x, name):
            return torch.einsum("bphd,hde->bphe", x, getattr(self, "W_" + name)) + getattr(self, "b_" + name)

        v = self.hook_v(proj(v_in, "V"))
        if not self.positional.uses_qk:
            return None, None, v
        return self.hook_q(proj(q_in, "Q")), self.hook_k(proj(k_in, "K")), v

    # -- the two paths -------------------------------------------------------------------------------------
    def _allowed(self, q_pos, k_pos) -> torch.Tensor | None:
        """Boolean [q, k] mask of keys each query may see, or None when every key is allowed."""
        if not self.causal:
            return None
        return k_pos[None, :] <= q_pos[:, None]

    def _explicit(self, q, k, v, q_pos, k_pos):
        qh = q.transpose(1, 2) if q is not None else None  # [b, h, q, e]
        kh = k.transpose(1, 2) if k is not None else None
        bias = self.positional.score_bias(qh, kh, q_pos, k_pos)
        # Half dtypes: scores and softmax in float32, as the fused kernel accumulates, so a large q·k gives the
        # same finite pattern on both paths instead of inf - inf = NaN here only.
        up = torch.float32 if v.dtype in (torch.float16, torch.bfloat16) else v.dtype
        bias = None if bias is None else bias.to(up)
        if self.positional.uses_qk:
            scores = qh.to(up) @ kh.to(up).transpose(-1, -2) * self.positional.scale
            scores = scores if bias is None else scores + bias
        else:
            scores = bias.expand(v.shape[0], -1, -1, -1)
        allowed = self._allowed(q_pos, k_pos)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1))
        return torch.einsum("bhqk,bkhe->bqhe", pattern.to(v.dtype), v)

    def _fast(self, q, k, v, q_pos, k_pos):
        allowed = self._allowed(q_pos, k_pos)
        if not self.positional.uses_qk:  # pattern is the same for the whole batch: one softmax, one matmul
            scores = self.positional.score_bias(None, None, q_pos, k_pos)[0]
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            pattern = torch.softmax(scores, dim=-1)  # [h, q, k]
            return torch.einsum("hqk,bkhe->bqhe", pattern, v)
        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        bias = self.positional.score_bias(qh, kh, q_pos, k_pos)
        same_len = q.shape[1] == k.shape[1]
        # one new query after a cache (a decoding step) is the last key, so it sees every key: no mask needed
        if bias is None and (allowed is None or same_len or q.shape[1] == 1):
            z = F.scaled_dot_product_attention(qh, kh, vh, is_causal=allowed is not None and same_len,
                                               scale=self.positional.scale)
        else:
            mask = allowed
            if bias is not None:
                mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
            z = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=self.positional.scale)
        return z.transpose(1, 2)
