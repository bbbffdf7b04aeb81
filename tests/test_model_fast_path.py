"""The fused fast path and the explicit (hooked) path compute the same function.

Tolerance: float32, max |Δ| ≤ 2e-5 on logits and ≤ 1e-4 × max|grad| + 1e-7 on gradients (reductions run in a
different order, nothing else differs). A float64 run checks 1e-10 on logits.
"""
from pathlib import Path

import pytest
import torch

from plm_interp import HookedPLM
from plm_interp.model import attention as attention_module
from plm_interp.model import hooks
from plm_interp.model.attention import Attention
from plm_interp.model.hooks import is_hooked
from tests.conftest import tiny_model


def _identity(x, hook):
    return x


def _run(model, tokens, explicit: bool):
    model.train()  # the fused path runs in training mode only (fast_path="train", the default)
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
    """Training mode, no hook on scores/pattern: the explicit path never runs; caching everything switches."""
    model = tiny_model(scheme).train()
    calls = []
    original = Attention._explicit
    monkeypatch.setattr(Attention, "_explicit", lambda self, *a: calls.append(1) or original(self, *a))
    model(tokens)
    model.run_with_cache(tokens, names_filter=lambda n: n.endswith(("hook_resid_post", "hook_z", "hook_v")))
    assert calls == []
    model.run_with_cache(tokens)
    assert len(calls) == model.cfg.n_layers


def _count_explicit(monkeypatch):
    calls = []
    original = Attention._explicit
    monkeypatch.setattr(Attention, "_explicit", lambda self, *a: calls.append(1) or original(self, *a))
    return calls


def test_eval_mode_runs_every_hook_point_for_plain_torch_hooks(scheme, tokens):
    """A hook that is not TransformerLens' (plain torch, as other tools use) sees pattern, scores and the LN
    tensors in eval mode, the mode a new or loaded model is in; in training mode the fused path skips them."""
    model = tiny_model(scheme)
    assert not model.training and not HookedPLM(model.cfg).training  # a new model starts in eval mode
    names = ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_attn_scores", "ln_final.hook_scale",
             "blocks.0.ln2.hook_normalized"]
    seen = {}
    handles = [model.hook_dict[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.detach()))
               for n in names]
    model(tokens)
    assert set(seen) == set(names)
    _, cache = model.run_with_cache(tokens, names_filter=names)
    for n in names:
        torch.testing.assert_close(seen[n], cache[n])
    seen.clear()
    model.train()
    model(tokens)
    assert seen == {}
    model.fast_path = "off"  # the public switch: every point runs in training mode too
    model(tokens)
    assert set(seen) == set(names)
    for h in handles:
        h.remove()


def test_fast_path_modes_choose_the_kernel(tokens, monkeypatch):
    model = tiny_model("rot")
    calls = _count_explicit(monkeypatch)
    model(tokens)
    assert len(calls) == 2  # eval + "train": explicit
    model.fast_path = "on"
    model(tokens)
    assert len(calls) == 2  # fused in eval mode too
    with pytest.raises(ValueError, match="fast_path"):
        model.fast_path = "sometimes"


def test_fast_path_rule_reads_no_private_torch_state():
    """Issue 15 item 5: the rule is public (TransformerLens' hook lists, the module's mode, the flag)."""
    source = Path(hooks.__file__).read_text() + Path(attention_module.__file__).read_text()
    assert "_forward_hooks" not in source and "_forward_pre_hooks" not in source and "_backward_hooks" not in source
