"""Probe primitives: the multi-head probe equals eq. 4.2 by brute force; probes find planted signals only."""
import pytest
import torch

from plm_interp.probes import MultiHeadLinearProbe, ProbeFit, check_layer, fit_probes, predict, residual
from tests.conftest import tiny_model


@pytest.mark.parametrize("mode", ["full", "tridiagonal", "diagonal"])
def test_multihead_probe_matches_equation_4_2_with_padding(mode):
    torch.manual_seed(0)
    probe = MultiHeadLinearProbe(8, 3, n_ctx=10, n_heads=4, width=5, mode=mode)
    x = torch.randn(2, 10, 8)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[0, 7:] = False
    out = probe(x, valid)
    f = probe.f(x).view(2, 10, 4, 3)
    for b in range(2):
        for i in range(int(valid[b].sum())):
            ref = torch.zeros(3)
            for r in range(4):
                if mode == "diagonal":
                    ref += f[b, i, r]
                    continue
                ok = valid[b] & ((torch.arange(10) - i).abs() <= 1 if mode == "tridiagonal" else True)
                logits = torch.stack([probe.P[i, r] @ probe.P[k, r] for k in range(10)])
                w = torch.softmax(logits.masked_fill(~ok, float("-inf")), 0)
                ref += (w[:, None] * f[b, :, r]).sum(0)
            torch.testing.assert_close(out[b, i], ref, atol=1e-5, rtol=1e-5)


def _planted(model, tokens):
    """Labels that are a fixed linear function of the layer-1 residual (so a linear probe can reach 100%)."""
    acts = residual(model, tokens, 1)
    direction = torch.randn(acts.shape[-1], generator=torch.Generator().manual_seed(0))
    score = acts @ direction
    return (score > score.median()).long()


def test_probe_finds_a_planted_linear_label_and_not_a_shuffled_one():
    model = tiny_model("rot")
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 11, (600, 12), generator=gen)
    valid = torch.ones_like(tokens, dtype=torch.bool)
    labels = _planted(model, tokens)
    shuffled = labels.flatten()[torch.randperm(labels.numel(), generator=gen)].view_as(labels)
    fits = {"planted": ProbeFit(MultiHeadLinearProbe(32, 2, 12, n_heads=2, width=8, mode="diagonal"), labels[:400]),
            "shuffled": ProbeFit(MultiHeadLinearProbe(32, 2, 12, n_heads=2, width=8, mode="diagonal"), shuffled[:400])}
    torch.manual_seed(0)
    fit_probes(model, 1, tokens[:400], valid[:400], fits, steps=400, lr=3e-2, batch_size=64, progress=False)
    pred = predict(model, 1, tokens[400:], valid[400:], {k: f.probe for k, f in fits.items()})
    acc = {k: float((pred[k] == lab[400:]).float().mean()) for k, lab in [("planted", labels), ("shuffled", shuffled)]}
    assert acc["planted"] > 0.95
    assert abs(acc["shuffled"] - 0.5) < 0.06


def test_bad_layers_and_empty_data_are_refused():
    model = tiny_model("rot")
    with pytest.raises(ValueError, match="layer = 7"):
        check_layer(model, 7)
    fit = {"x": ProbeFit(MultiHeadLinearProbe(32, 2, 4), torch.zeros(0, 4, dtype=torch.long))}
    with pytest.raises(ValueError, match="empty"):
        fit_probes(model, 1, torch.zeros(0, 4, dtype=torch.long), torch.zeros(0, 4, dtype=torch.bool), fit, steps=1)
    with pytest.raises(ValueError, match="mode"):
        MultiHeadLinearProbe(32, 2, 4, mode="banded")


def test_stop_at_layer_returns_the_cached_residual(tokens):
    model = tiny_model("abs")
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(residual(model, tokens, 0), cache["blocks.0.hook_resid_pre"])
    torch.testing.assert_close(residual(model, tokens, 2), cache["blocks.1.hook_resid_post"])


@pytest.mark.parametrize("chunk_size", [64, 400])
def test_cached_activations_train_the_same_probe_with_one_pass_of_the_model(chunk_size):
    """Reusing the set's activations across epochs changes the cost, not the probe."""
    model = tiny_model("rot")
    tokens = torch.randint(0, 11, (200, 12), generator=torch.Generator().manual_seed(1))
    valid = torch.ones_like(tokens, dtype=torch.bool)
    labels = _planted(model, tokens)
    calls = []
    model.blocks[0].hook_resid_pre.add_hook(lambda act, hook: calls.append(act.shape[0]))
    probes = {}
    for cache_bytes in (0, 2**30):
        torch.manual_seed(0)
        fit = {"p": ProbeFit(MultiHeadLinearProbe(32, 2, 12, n_heads=2, width=8, mode="diagonal"), labels)}
        calls.clear()
        fit_probes(model, 1, tokens, valid, fit, steps=40, lr=3e-2, batch_size=50, chunk_size=chunk_size,
                   progress=False, cache_bytes=cache_bytes)
        probes[cache_bytes] = (fit["p"].probe, sum(calls))
    # 40 steps take several epochs over the 200 rows: the model runs on every epoch without the cache, once with it
    assert probes[0][1] >= 5 * 200 and probes[2**30][1] == 200
    for a, b in zip(probes[0][0].parameters(), probes[2**30][0].parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_probe_init_depends_on_seed_only_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = MultiHeadLinearProbe(8, 3, n_ctx=10, n_heads=2, width=5), MultiHeadLinearProbe(8, 3, n_ctx=10, n_heads=2, width=5)
    c = MultiHeadLinearProbe(8, 3, n_ctx=10, n_heads=2, width=5, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.f.weight, c.f.weight)
