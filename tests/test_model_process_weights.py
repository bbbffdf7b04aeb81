"""process_weights family (issue 19 item 3) with TransformerLens' invariance checks: each rewrite leaves the
model's output unchanged (logits; log-probs for center_unembed), and after processing the residual
decomposition adds up to the logit difference."""
import copy

import pytest
import torch

from tests.conftest import tiny_model

STEPS = ["fold_layer_norm", "center_writing_weights", "center_unembed", "fold_value_biases"]


def _processed(model, *steps):
    out = copy.deepcopy(model)
    for step in steps:
        getattr(out, step)()
    return out


@pytest.mark.parametrize("step", STEPS)
def test_each_step_leaves_the_function_unchanged(scheme, tokens, step):
    model = tiny_model(scheme, dtype="float64")
    before = model(tokens)
    after = _processed(model, step)(tokens)
    if step == "center_unembed":  # logits move by one constant per position
        torch.testing.assert_close(after.log_softmax(-1), before.log_softmax(-1))
        assert (after.mean(-1)).abs().max() < 1e-10
    else:
        torch.testing.assert_close(after, before)


def test_fold_layer_norm_leaves_unit_layer_norms_and_centred_readers(scheme, tokens):
    model = _processed(tiny_model(scheme, dtype="float64"), "fold_layer_norm")
    for ln in [model.ln_final] + [m for b in model.blocks for m in (b.ln1, b.ln2)]:
        assert torch.equal(ln.w, torch.ones_like(ln.w)) and torch.equal(ln.b, torch.zeros_like(ln.b))
    assert model.W_U.mean(0).abs().max() < 1e-12 and model.W_V.mean(2).abs().max() < 1e-12


def test_process_weights_makes_logit_attributions_add_up(scheme, tokens):
    """After process_weights, the per-component logit attribution (cache.logit_attrs on decompose_resid)
    summed over components equals the logit difference minus the unembedding bias difference."""
    model = tiny_model(scheme, dtype="float64")
    reference = model(tokens)
    model = _processed(model)  # nothing yet
    model.process_weights()
    logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits.log_softmax(-1), reference.log_softmax(-1))
    a, b = 3, 5
    stack = cache.decompose_resid(pos_slice=-1)  # [component, batch, d_model]
    attrs = cache.logit_attrs(stack, tokens=torch.full((tokens.shape[0],), a), incorrect_tokens=torch.full(
        (tokens.shape[0],), b), pos_slice=-1)
    diff = logits[:, -1, a] - logits[:, -1, b] - (model.b_U[a] - model.b_U[b])
    torch.testing.assert_close(attrs.sum(0), diff)
