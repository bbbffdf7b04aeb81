"""TransformerLens 3.9's own HookedTransformer with the same weights gives the same tensor at every shared hook
name (issue 19 item 3), and TL's process_weights_ gives the same processed weights as ours.

Runs only on the TL 3.x line (``bash scripts/test_other_tl.sh``): TL 4.x removed HookedTransformer; there,
tests/test_model_hook_semantics.py checks the same definitions by hand. TL has no rel / pos / uni schemes;
``none`` is TL's ``standard`` with W_pos = 0.
"""
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tests.conftest import tiny_model

TL_SCHEMES = ("abs", "rot", "none")


def tl_twin(model) -> HookedTransformer:
    """TL's HookedTransformer with ``model``'s architecture and weights (float64)."""
    cfg = model.cfg
    tl_cfg = HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_ctx=cfg.n_ctx, d_head=cfg.d_head, n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp, d_vocab=cfg.d_vocab, act_fn=cfg.act_fn, normalization_type="LN", eps=cfg.eps,
        positional_embedding_type="rotary" if cfg.positional == "rot" else "standard",
        **(dict(rotary_dim=cfg.rotary_dim, rotary_base=int(cfg.rotary_base)) if cfg.positional == "rot" else {}),
        attention_dir=cfg.attention_dir,
        default_prepend_bos=False, dtype=torch.float64)
    twin = HookedTransformer(tl_cfg)
    state = dict(model.state_dict())
    if cfg.positional == "none":
        state["pos_embed.W_pos"] = torch.zeros(cfg.n_ctx, cfg.d_model, dtype=torch.float64)
    missing, unexpected = twin.load_state_dict(state, strict=False)
    assert unexpected == [] and all(k.split(".")[-1] in ("IGNORE", "mask", "rotary_sin", "rotary_cos")
                                    for k in missing), missing
    return twin.eval()


@pytest.mark.parametrize("scheme", TL_SCHEMES)
@pytest.mark.parametrize("direction", ["causal", "bidirectional"])
def test_every_shared_cache_entry_equals_tl_hooked_transformer(scheme, direction, tokens):
    model = tiny_model(scheme, dtype="float64", attention_dir=direction, rotary_dim=4)
    twin = tl_twin(model)
    ours_logits, ours = model.run_with_cache(tokens)
    tl_logits, theirs = twin.run_with_cache(tokens)
    shared = sorted(set(ours.keys()) & set(theirs.keys()))
    assert len(shared) >= 15 * model.cfg.n_layers  # every block hook, LN hooks, q/k/v/z/scores/pattern ...
    names = {n.split(".")[-1] for n in shared}
    assert {"hook_normalized", "hook_scale", "hook_attn_scores", "hook_pattern"} <= names
    if scheme == "rot":
        assert {"hook_rot_q", "hook_rot_k"} <= names
    for name in shared:
        if scheme == "none" and name == "hook_pos_embed":
            continue
        torch.testing.assert_close(ours[name], theirs[name], msg=name)
    torch.testing.assert_close(ours_logits, tl_logits)


@pytest.mark.parametrize("scheme", TL_SCHEMES)
def test_process_weights_equals_tl_process_weights(scheme):
    model = tiny_model(scheme, dtype="float64", rotary_dim=4)
    twin = tl_twin(model)
    twin.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)  # TL 3.9 folds b_V too
    model.process_weights()
    for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_in", "b_in", "W_out", "b_out",
                 "W_E", "W_U", "b_U"):
        # TL 3.9 processes part of the state dict in float32 (W_E comes back 1e-8 off the float64 result)
        torch.testing.assert_close(getattr(model, name), getattr(twin, name), atol=1e-6, rtol=1e-6, msg=name)
    tokens = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(tokens), twin(tokens), atol=1e-5, rtol=1e-5)
