"""Issue 20, model findings (items 4 and 10): configs that give NaN and inputs of the wrong shape are refused
with a message naming the field or the shape, before any work; the fused and hooked paths agree on NaN."""
import math

import pytest
import torch

from plm_interp import ConfigError, HookedPLM, PLMConfig
from tests.conftest import tiny_config, tiny_model

BASE = dict(d_model=32, n_layers=2, n_heads=4, d_vocab=11, n_ctx=16)


@pytest.mark.parametrize("base", [0, -10000.0, math.nan, math.inf])
def test_issue20_4_rotary_base_that_gives_nan_is_refused(base):
    with pytest.raises(ConfigError, match="rotary_base") as info:
        PLMConfig(**BASE, positional="rot", rotary_base=base)
    assert repr(base) in str(info.value) or str(base) in str(info.value)


def test_issue20_4_float16_on_cpu_is_refused_with_the_alternatives():
    with pytest.raises(ConfigError, match="'dtype' = 'float16'.*cpu.*bfloat16"):
        PLMConfig(**BASE, dtype="float16", device="cpu")
    assert PLMConfig(**BASE, dtype="bfloat16").dtype == torch.bfloat16  # the suggested CPU half type works


def _finite_both_ways(model, tokens):
    model.train()  # fused kernels (nothing hooked)
    fast = torch.isfinite(model(tokens))
    model.eval()
    logits, _ = model.run_with_cache(tokens)  # every hook point
    return fast, torch.isfinite(logits)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_issue20_4_fast_path_and_run_with_cache_agree_on_nan(scheme, tokens, dtype):
    """A NaN in any single weight, and q·k scores pushed to overflow: the fused path is non-finite exactly
    where run_with_cache is (position by position), never finite where the cache run is NaN."""
    names = [n for n, _ in tiny_model(scheme, dtype=dtype).named_parameters()]
    for name in names:
        model = tiny_model(scheme, dtype=dtype)
        with torch.no_grad():
            dict(model.named_parameters())[name].view(-1)[0] = float("nan")
        fast, cached = _finite_both_ways(model, tokens)
        assert torch.equal(fast, cached), name
    model = tiny_model(scheme, dtype=dtype)
    with torch.no_grad():
        for block in model.blocks:
            (block.attn.W_Q if block.attn.positional.uses_qk else block.ln1.w).mul_(1e19)
    fast, cached = _finite_both_ways(model, tokens)
    assert torch.equal(fast, cached)


def test_issue20_4_half_precision_scores_that_overflow_stay_finite_on_both_paths(tokens):
    """The finding: float16 q·k past 65504 made run_with_cache NaN (inf - inf in softmax) while the fused
    kernel, which accumulates in float32, stayed finite. Both now score in float32 for half dtypes."""
    for scheme in ("abs", "rot", "rel", "none"):
        model = tiny_model(scheme).half()  # float16 modules (a float16 *config* is refused on CPU)
        with torch.no_grad():
            for block in model.blocks:
                block.attn.W_Q.mul_(300)
                block.attn.W_K.mul_(300)
        fast, cached = _finite_both_ways(model, tokens)
        assert bool(fast.all()) and bool(cached.all()), scheme


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 5)])
def test_issue20_10_empty_input_is_refused_naming_the_shape(shape):
    model = tiny_model("rot")
    with pytest.raises(ValueError, match=rf"empty: shape \({shape[0]},"):
        model(torch.zeros(shape, dtype=torch.long))


def test_issue20_10_three_d_input_is_refused_naming_the_shape():
    model = tiny_model("rot")
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\)"):
        model(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[pos\] or \[batch, pos\]"):
        model.generate(torch.zeros(2, 3, 4, dtype=torch.long), max_new_tokens=1)


@pytest.mark.parametrize("value", [-1, 0, math.nan])
def test_issue20_10_initializer_range_that_is_not_positive_is_refused(value):
    with pytest.raises(ConfigError, match="initializer_range"):
        PLMConfig(**BASE, initializer_range=value)


def test_issue20_10_huge_n_ctx_with_rot_allocates_no_tables():
    """n_ctx = 1e9 used to allocate ~8 GB of cos/sin tables before failing; now the tables cover only the
    positions a forward pass uses, and the model computes what a short-context copy computes."""
    huge = HookedPLM(tiny_config("rot", n_ctx=10**9))
    assert sum(b.numel() for b in huge.buffers()) == 0
    small = HookedPLM(tiny_config("rot", n_ctx=16))
    small.load_state_dict(huge.state_dict())
    tokens = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(huge(tokens), small(tokens))
    cached = huge.blocks[0].attn.positional._cached
    assert cached is not None and cached[1].shape[0] == 12
