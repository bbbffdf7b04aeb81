"""TransformerLens interop for every positional scheme: cache names, residual decomposition, logit lens,
activation patching, and hooks that edit attention scores."""
import pytest
import torch
import transformer_lens.patching as patching
from transformer_lens import ActivationCache

from tests.conftest import tiny_model

ATTN_HOOKS = ["hook_v", "hook_attn_scores", "hook_pattern", "hook_z"]


def test_run_with_cache_has_hooked_transformer_names(scheme, tokens):
    model = tiny_model(scheme)
    logits, cache = model.run_with_cache(tokens)
    assert isinstance(cache, ActivationCache)
    expected = {"hook_embed", "ln_final.hook_scale", "ln_final.hook_normalized"}
    for l in range(model.cfg.n_layers):
        expected |= {f"blocks.{l}.{n}" for n in ["hook_resid_pre", "hook_resid_mid", "hook_resid_post",
                                                  "hook_attn_out", "hook_mlp_out", "ln1.hook_scale",
                                                  "mlp.hook_pre", "mlp.hook_post"]}
        expected |= {f"blocks.{l}.attn.{n}" for n in ATTN_HOOKS}
        if scheme not in ("pos", "uni"):
            expected |= {f"blocks.{l}.attn.hook_q", f"blocks.{l}.attn.hook_k"}
        if scheme == "rot":
            expected |= {f"blocks.{l}.attn.hook_rot_q", f"blocks.{l}.attn.hook_rot_k"}
    if scheme == "abs":
        expected.add("hook_pos_embed")
    assert expected <= set(cache.keys())
    b, p = tokens.shape
    h, e = model.cfg.n_heads, model.cfg.d_head
    assert cache["pattern", 0].shape == (b, h, p, p)
    assert cache["z", 1].shape == (b, p, h, e)
    # the cached pattern is the softmax of the cached (masked) scores, rows sum to one, causal
    pattern = cache["pattern", 0]
    torch.testing.assert_close(pattern, torch.softmax(cache["attn_scores", 0], -1))
    torch.testing.assert_close(pattern.sum(-1), torch.ones(b, h, p))
    assert pattern.triu(1).abs().max() == 0


def test_residual_decompositions_reproduce_final_residual(scheme, tokens):
    model = tiny_model(scheme)
    _, cache = model.run_with_cache(tokens)
    final = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    accumulated = cache.accumulated_resid()
    torch.testing.assert_close(accumulated[-1], final)
    torch.testing.assert_close(cache.decompose_resid().sum(0), final, atol=1e-5, rtol=1e-5)
    # per-head decomposition: stacked head outputs + b_O reproduce each layer's attention output
    heads = cache.stack_head_results(layer=1)  # heads of layer 0
    torch.testing.assert_close(heads.sum(0) + model.blocks[0].attn.b_O, cache["attn_out", 0], atol=1e-5, rtol=1e-5)


def test_logit_lens_at_last_layer_equals_logits(scheme, tokens):
    model = tiny_model(scheme)
    logits, cache = model.run_with_cache(tokens)
    resid = cache.accumulated_resid(apply_ln=True)[-1]  # ln_final applied with the cached scale
    lens_logits = resid @ model.W_U + model.b_U
    torch.testing.assert_close(lens_logits, logits, atol=1e-4, rtol=1e-4)
    direction = model.tokens_to_residual_directions(torch.tensor([3]))
    torch.testing.assert_close(direction[0], model.W_U[:, 3])


def _metric(logits):
    return logits[:, -1].log_softmax(-1)[:, 0].mean()


@pytest.mark.parametrize("fn", ["get_act_patch_resid_pre", "get_act_patch_attn_head_pattern_all_pos",
                                "get_act_patch_attn_head_out_all_pos"])
def test_clean_into_clean_patching_changes_nothing(scheme, fn):
    model = tiny_model(scheme)
    tokens = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(4))
    clean_logits, cache = model.run_with_cache(tokens)
    result = getattr(patching, fn)(model, tokens, cache, _metric)
    torch.testing.assert_close(result, torch.full_like(result, _metric(clean_logits).item()), atol=1e-5, rtol=1e-5)


def test_patching_a_corrupted_run_moves_the_metric(scheme):
    model = tiny_model(scheme)
    gen = torch.Generator().manual_seed(5)
    clean = torch.randint(0, 11, (2, 6), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 0] = (corrupted[:, 0] + 3) % 11
    clean_logits, cache = model.run_with_cache(clean)
    result = patching.get_act_patch_resid_pre(model, corrupted, cache, _metric)
    assert result.shape == (model.cfg.n_layers, 6)
    # patching position 0 (the only changed one) at layer 0 restores the clean run exactly
    torch.testing.assert_close(result[0, 0], _metric(clean_logits), atol=1e-5, rtol=1e-5)


def test_editing_attention_scores_changes_the_output(scheme, tokens):
    model = tiny_model(scheme)
    clean = model(tokens)

    def only_first_token(scores, hook):
        scores[..., 0] = 30.0  # every query now attends (almost) only to position 0
        return scores

    edited = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_attn_scores", only_first_token)])
    assert (edited - clean).abs().max() > 1e-3
    assert torch.equal(model(tokens), clean)  # the hook is gone afterwards
