"""AdamW groups (what decays) and the learning-rate schedule."""
from __future__ import annotations

import math

import pytest
import torch
from train_helpers import tiny_model

from plm_interp import HookedPLM, preset_config
from plm_interp.training import TrainConfig, build_optimizer, lr_factor, param_groups


def _groups(model, **cfg):
    groups = param_groups(model, TrainConfig(max_steps=1, **cfg))
    return {("decay" if g["weight_decay"] > 0 else "none"): set(g["names"]) for g in groups}


def test_only_matrices_decay_by_default():
    model = HookedPLM(preset_config("tiny", d_vocab=16, n_ctx=16, positional="abs", seed=0))
    groups = _groups(model, weight_decay=0.1)
    assert {"blocks.0.attn.W_Q", "blocks.1.mlp.W_out", "unembed.W_U"} <= groups["decay"]
    assert {"embed.W_E", "pos_embed.W_pos", "blocks.0.attn.b_Q", "blocks.0.ln1.w", "ln_final.b",
            "unembed.b_U"} <= groups["none"]
    assert groups["decay"].isdisjoint(groups["none"])
    assert len(groups["decay"] | groups["none"]) == len(list(model.parameters()))


def test_relative_and_position_only_tables_count_as_embeddings():
    rel = _groups(HookedPLM(preset_config("tiny", d_vocab=16, n_ctx=16, positional="rel", seed=0)))
    assert "blocks.0.attn.positional.rel_embed" in rel["none"]
    assert "blocks.0.attn.positional.W_K_rel" in rel["decay"]
    pos = _groups(HookedPLM(preset_config("tiny", d_vocab=16, n_ctx=16, positional="pos", seed=0)))
    assert "blocks.0.attn.positional.W_pos_attn" in pos["none"]


def test_decay_params_adds_groups_and_the_optimizer_uses_them():
    groups = _groups(tiny_model(), decay_params=["matrix", "embedding"])
    assert "embed.W_E" in groups["decay"] and "blocks.0.ln1.w" in groups["none"]
    opt = build_optimizer(tiny_model(), TrainConfig(max_steps=1, weight_decay=0.2, betas=(0.8, 0.9)))
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 0.2]
    assert opt.param_groups[0]["betas"] == (0.8, 0.9)


def test_decayed_params_shrink_and_others_do_not_without_gradient():
    model = tiny_model()
    opt = build_optimizer(model, TrainConfig(max_steps=1, lr=0.1, weight_decay=0.5))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(model.named_parameters())
    assert torch.allclose(after["blocks.0.attn.W_Q"], before["blocks.0.attn.W_Q"] * (1 - 0.1 * 0.5))
    assert torch.equal(after["embed.W_E"], before["embed.W_E"])
    assert torch.equal(after["blocks.0.ln1.w"], before["blocks.0.ln1.w"])


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_warmup_then_decay_to_the_floor(schedule):
    cfg = TrainConfig(max_steps=100, warmup_steps=10, schedule=schedule, min_lr_ratio=0.1)
    f = [lr_factor(s, 100, cfg) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:10], f[1:10]))  # warmup rises
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # then never rises
    assert f[100] == pytest.approx(0.1) and min(f) == pytest.approx(0.1)
    mid = 0.1 + 0.9 * (0.5 if schedule == "linear" else 0.5 * (1 + math.cos(math.pi / 2)))
    assert f[55] == pytest.approx(mid)


def test_constant_schedule():
    cfg = TrainConfig(max_steps=10, warmup_steps=2, schedule="constant")
    assert [lr_factor(s, 10, cfg) for s in (0, 1, 5, 9)] == [0.5, 1.0, 1.0, 1.0]
