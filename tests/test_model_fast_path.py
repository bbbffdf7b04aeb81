"""The fused fast path and the explicit (hooked) path compute the same function.

Tolerance: float32, max |Δ| ≤ 2e-5 on logits and ≤ 1e-4 × max|grad| + 1e-7 on gradients (reductions run in a
different order, nothing else differs). A float64 run checks 1e-10 on logits.
"""
import pytest
import torch

from plm_interp.model.attention import Attention
from plm_interp.model.hooks import is_hooked
from tests.conftest import tiny_model


def _identity(x, hook):
    return x


def _run(model, tokens, explicit: bool):
    model.zero_grad()
    hooks = [(lambda name: name.endswith("hook_pattern"), _identity)] if explicit else []
    with model.hooks(fwd_hooks=hooks):
        if explicit:
            assert all(is_hooked(b.attn.hook_pattern) for b in model.blocks)
        logits = model(tokens)
        (logits.float() ** 2).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


@pytest.mark.parametrize("direction", ["causal", "bidirectional"])
def test_fast_and_explicit_paths_agree(scheme, tokens, direction):
    model = tiny_model(scheme, attention_dir=direction)
    fast_logits, fast_grads = _run(model, tokens, explicit=False)
    slow_logits, slow_grads = _run(model, tokens, explicit=True)
    assert (fast_logits - slow_logits).abs().max() <= 2e-5
    assert fast_grads.keys() == slow_grads.keys() and len(fast_grads) > 0
    for name in fast_grads:
        # b_K's true gradient is 0 (softmax ignores a per-query constant): both paths give ~1e-9 noise there
        tol = 1e-4 * slow_grads[name].abs().max() + 1e-7
        assert (fast_grads[name] - slow_grads[name]).abs().max() <= tol, name


def test_paths_agree_in_float64(scheme, tokens):
    model = tiny_model(scheme, dtype="float64")
    fast, _ = _run(model, tokens, explicit=False)
    slow, _ = _run(model, tokens, explicit=True)
    assert fast.dtype == torch.float64 and (fast - slow).abs().max() <= 1e-10


def test_idle_hooks_take_the_fused_path(scheme, tokens, monkeypatch):
    """No hook on scores/pattern: the explicit path never runs; caching everything switches to it."""
    model = tiny_model(scheme)
    calls = []
    original = Attention._explicit
    monkeypatch.setattr(Attention, "_explicit", lambda self, *a: calls.append(1) or original(self, *a))
    model(tokens)
    model.run_with_cache(tokens, names_filter=lambda n: n.endswith(("hook_resid_post", "hook_z", "hook_v")))
    assert calls == []
    model.run_with_cache(tokens)
    assert len(calls) == model.cfg.n_layers
