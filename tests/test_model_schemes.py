"""Each positional scheme computes what its paper definition says, checked by independent brute force."""
import math

import pytest
import torch

from plm_interp.model.positional import window_sizes
from tests.conftest import tiny_model


def _cache(model, tokens):
    return model.run_with_cache(tokens)[1]


def test_uni_pattern_is_uniform_over_the_window_rule():
    for rule, expected in [("2^h-1", [1, 3, 7, 15]), ("2^(h-1)", [1, 2, 4, 8])]:
        assert window_sizes(4, rule) == expected
        model = tiny_model("uni", uni_window_rule=rule)
        pattern = _cache(model, torch.zeros(1, 20, dtype=torch.long))["pattern", 0][0]
        for h, w in enumerate(expected):
            for i in range(20):
                lo = max(0, i - w + 1)
                ref = torch.zeros(20)
                ref[lo: i + 1] = 1.0 / (i + 1 - lo)
                torch.testing.assert_close(pattern[h, i], ref)


def test_pos_pattern_is_a_softmax_of_a_table_indexed_by_offset():
    model = tiny_model("pos")
    table = model.blocks[0].attn.positional.W_pos_attn.detach()
    n_ctx = model.cfg.n_ctx
    for tokens in (torch.zeros(1, 9, dtype=torch.long), torch.arange(9)[None]):
        pattern = _cache(model, tokens)["pattern", 0][0]  # independent of content
        for h in range(4):
            for i in range(9):
                logits = torch.tensor([table[h, i - j + n_ctx - 1].item() for j in range(i + 1)])
                torch.testing.assert_close(pattern[h, i, : i + 1], torch.softmax(logits, 0))


def test_rotary_scores_depend_on_offsets_only():
    model = tiny_model("rot")
    rot = model.blocks[0].attn.positional
    q, k = torch.randn(1, 1, 4, 8), torch.randn(1, 1, 4, 8)
    def score(i, j):
        qi, _ = rot.rotate(q, q, torch.tensor([i]), torch.tensor([i]))
        _, kj = rot.rotate(k, k, torch.tensor([j]), torch.tensor([j]))
        return (qi * kj).sum(-1)
    torch.testing.assert_close(score(5, 2), score(25, 22), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 4))
    # rotary_dim < d_head leaves the remaining dims untouched
    partial = tiny_model("rot", rotary_dim=4).blocks[0].attn.positional
    x = torch.randn(1, 3, 4, 8)
    y, _ = partial.rotate(x, x, torch.arange(3), torch.arange(3))
    torch.testing.assert_close(y[..., 4:], x[..., 4:])


def test_relative_bias_matches_the_deberta_formula_term_by_term():
    model = tiny_model("rel", rel_max_distance=3)
    rel = model.blocks[0].attn.positional
    b, h, n, e = 2, 4, 7, 8
    q, k = torch.randn(b, h, n, e), torch.randn(b, h, n, e)
    pos = torch.arange(n)
    bias = rel.score_bias(q, k, pos, pos)
    P, Wk, Wq = rel.rel_embed.detach(), rel.W_K_rel.detach(), rel.W_Q_rel.detach()
    def delta(i, j):
        return min(max(i - j, -3), 2) + 3
    for bb in range(b):
        for hh in range(h):
            for i in range(n):
                for j in range(n):
                    c2p = q[bb, hh, i] @ (P[delta(i, j)] @ Wk[hh])
                    p2c = k[bb, hh, j] @ (P[delta(j, i)] @ Wq[hh])
                    ref = (c2p + p2c) / math.sqrt(3 * e)
                    assert abs(bias[bb, hh, i, j].item() - ref.item()) < 1e-4


def test_nope_bidirectional_model_is_permutation_equivariant():
    model = tiny_model("none", attention_dir="bidirectional")
    tokens = torch.randint(0, 11, (1, 10), generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(tokens)[:, perm], model(tokens[:, perm]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scheme", ["abs", "rot", "rel", "pos"])
def test_positional_schemes_break_permutation_symmetry(scheme):
    model = tiny_model(scheme, attention_dir="bidirectional")
    tokens = torch.randint(0, 11, (1, 10), generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(model(tokens)[:, perm], model(tokens[:, perm]), atol=1e-4)


def test_abs_adds_w_pos_at_hook_pos_embed(tokens):
    model = tiny_model("abs")
    cache = _cache(model, tokens)
    torch.testing.assert_close(cache["hook_pos_embed"][0], model.W_pos[: tokens.shape[1]])
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], cache["hook_embed"] + cache["hook_pos_embed"])


def test_causal_vs_encoder_information_flow(scheme):
    tokens = torch.randint(0, 11, (1, 12), generator=torch.Generator().manual_seed(3))
    later = tokens.clone()
    later[0, 8] = (later[0, 8] + 1) % 11
    causal = tiny_model(scheme)
    assert torch.equal(causal(tokens)[:, :8], causal(later)[:, :8])
    encoder = tiny_model(scheme, attention_dir="bidirectional")
    assert not torch.allclose(encoder(tokens)[:, :8], encoder(later)[:, :8])


def test_masked_lm_loss_only_counts_targets():
    model = tiny_model("rel", attention_dir="bidirectional")
    tokens = torch.randint(0, 10, (2, 8), generator=torch.Generator().manual_seed(0))
    targets = torch.full_like(tokens, -100)
    targets[0, 3], targets[1, 5] = 4, 7
    logits = model(tokens)
    ref = -(logits[0, 3].log_softmax(-1)[4] + logits[1, 5].log_softmax(-1)[7]) / 2
    torch.testing.assert_close(model(tokens, return_type="loss", targets=targets), ref)


def test_weight_views_have_hooked_transformer_shapes(scheme):
    model = tiny_model(scheme)
    L, H, D, E = 2, 4, 32, 8
    assert model.W_V.shape == (L, H, D, E) and model.W_O.shape == (L, H, E, D)
    assert model.W_E.shape == (11, D) and model.W_U.shape == (D, 11)
    assert model.W_in.shape == (L, D, 4 * D)
    if scheme in ("pos", "uni"):
        with pytest.raises(AttributeError, match="no W_Q"):
            model.W_Q
    else:
        assert model.W_Q.shape == (L, H, D, E) and model.W_K.shape == (L, H, D, E)
    if scheme == "abs":
        assert model.W_pos.shape == (48, D)
    else:
        with pytest.raises(AttributeError, match="W_pos"):
            model.W_pos
