"""nnsight (issue 19 item 5): reading and editing any hook point inside an ``NNsight(model).trace`` works with
no setup and gives run_with_cache's tensors. nnsight installs beside TransformerLens 4.x (a dev dependency)."""
import torch
from nnsight import NNsight

from tests.conftest import tiny_model

# in execution order (nnsight requires reads in the order the model runs)
POINTS = ["blocks.0.ln1.hook_scale", "blocks.0.ln1.hook_normalized", "blocks.0.attn.hook_attn_scores",
          "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z", "blocks.1.ln2.hook_normalized",
          "ln_final.hook_scale", "ln_final.hook_normalized"]


def _envoy(root, name):
    node = root
    for part in name.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


def test_nnsight_reads_every_hook_point_as_run_with_cache(scheme, tokens):
    model = tiny_model(scheme)
    wrapped = NNsight(model)
    saved = {}
    with wrapped.trace(tokens):
        for name in POINTS:
            saved[name] = _envoy(wrapped, name).output.save()
        logits = wrapped.output.save()
    clean, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, clean)
    for name in POINTS:
        torch.testing.assert_close(saved[name], cache[name], msg=name)


def test_nnsight_edits_the_pattern_like_a_transformer_lens_hook(scheme, tokens):
    model = tiny_model(scheme)
    wrapped = NNsight(model)

    def first_token_only(pattern, hook=None):
        out = torch.zeros_like(pattern)
        out[..., 0] = 1.0
        return out

    with wrapped.trace(tokens):
        pattern = wrapped.blocks[1].attn.hook_pattern.output
        wrapped.blocks[1].attn.hook_pattern.output = first_token_only(pattern)
        edited = wrapped.output.save()
    expected = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_pattern", first_token_only)])
    torch.testing.assert_close(edited, expected)
    assert (expected - model(tokens)).abs().max() > 1e-3
