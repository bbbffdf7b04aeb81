"""Hook semantics equal TransformerLens' definitions (issue 19 item 3), checked on every scheme against the
formulas of TL's HookedTransformer recomputed by hand from other cache entries and the weights. (On the TL 3.9
line, tests_other_tl/ also builds TL's own HookedTransformer with the same weights and compares every shared
cache entry; TL 4.x no longer ships HookedTransformer.)"""
import torch

from tests.conftest import tiny_model


def test_layer_norm_hooks_are_tl_s(scheme, tokens):
    """TL: hook_scale = sqrt(mean((x - mean x)^2) + eps); hook_normalized = (x - mean x) / scale, *before*
    the LayerNorm weight and bias; the output is normalized * w + b."""
    model = tiny_model(scheme, dtype="float64")
    _, cache = model.run_with_cache(tokens)
    last = model.cfg.n_layers - 1
    inputs = {"blocks.0.ln1": cache["blocks.0.hook_resid_pre"], "blocks.1.ln2": cache["blocks.1.hook_resid_mid"],
              "ln_final": cache[f"blocks.{last}.hook_resid_post"]}
    for name, x in inputs.items():
        centred = x - x.mean(-1, keepdim=True)
        scale = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
        torch.testing.assert_close(cache[f"{name}.hook_scale"], scale)
        torch.testing.assert_close(cache[f"{name}.hook_normalized"], centred / scale)
    ln = model.ln_final
    logits = (cache["ln_final.hook_normalized"] * ln.w + ln.b) @ model.W_U + model.b_U
    torch.testing.assert_close(logits, model(tokens))


def _neox_rotate(x, base, dim):
    """GPT-NeoX rotary by hand: pairs (i, i + dim/2) rotate by pos * base^(-2i/dim)."""
    pos = torch.arange(x.shape[1], dtype=torch.float64)
    freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angle = (pos[:, None] * freq[None, :])[None, :, None, :]  # [1, pos, 1, dim/2]
    a, b = x[..., : dim // 2], x[..., dim // 2: dim]
    return torch.cat([a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin(), x[..., dim:]], -1)


def test_attention_hooks_are_tl_s(tokens):
    """TL: hook_attn_scores are q·k / sqrt(d_head) with the causal mask already applied (-inf), hook_pattern
    is their softmax, hook_z = pattern · v, attn_out = z W_O + b_O; rotary q/k at hook_rot_q / hook_rot_k."""
    for scheme in ("abs", "rot", "none"):
        model = tiny_model(scheme, dtype="float64", rotary_dim=4)
        _, cache = model.run_with_cache(tokens)
        for layer in range(model.cfg.n_layers):
            q, k = cache["q", layer], cache["k", layer]
            if scheme == "rot":
                torch.testing.assert_close(cache["rot_q", layer], _neox_rotate(q, model.cfg.rotary_base, 4))
                torch.testing.assert_close(cache["rot_k", layer], _neox_rotate(k, model.cfg.rotary_base, 4))
                q, k = cache["rot_q", layer], cache["rot_k", layer]
            scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / model.cfg.d_head**0.5
            p = scores.shape[-1]
            scores = scores.masked_fill(torch.ones(p, p, dtype=torch.bool).triu(1), float("-inf"))
            torch.testing.assert_close(cache["attn_scores", layer], scores)
            torch.testing.assert_close(cache["pattern", layer], scores.softmax(-1))
            z = torch.einsum("bhqk,bkhe->bqhe", cache["pattern", layer], cache["v", layer])
            torch.testing.assert_close(cache["z", layer], z)
            attn = model.blocks[layer].attn
            torch.testing.assert_close(cache["attn_out", layer], torch.einsum("bqhe,hed->bqd", z, attn.W_O) + attn.b_O)
