"""LoRA (plm_interp.training.lora): a fresh adapter changes nothing, only adapters get gradients, the update is the
low-rank map it claims to be (checked against an explicit per-head product), merge == unmerged forward, adapters
round-trip through safetensors, and training with ``train.lora`` leaves the base weights bit-identical."""
from __future__ import annotations

import argparse
import copy
import json

import pytest
import torch
import train_helpers  # noqa: F401  (registers the count_test task)

from plm_interp import HookedPLM, preset_config
from plm_interp.checkpoint import load_model
from plm_interp.config import ConfigError
from plm_interp.training import TrainConfig, Trainer
from plm_app.commands import train as train_cli
from plm_interp.training.lora import (ADAPTERS_FILE, LoRAConfig, adapters, apply_lora, load_adapters, merge_lora,
                                      remove_lora, save_adapters, unmerge_lora)

ALL = ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_E")
TOKENS = torch.randint(0, 16, (3, 12), generator=torch.Generator().manual_seed(1))


def tiny(positional: str = "rot", seed: int = 0) -> HookedPLM:
    return HookedPLM(preset_config("tiny", d_vocab=16, n_ctx=16, positional=positional, seed=seed))


def perturb(model, seed: int = 2) -> None:
    """Give every adapter a non-zero B (a trained adapter), so merges and round trips are not trivially zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for a in adapters(model).values():
            a.lora_B.copy_(torch.randn(a.lora_B.shape, generator=g) * 0.1)


def test_zero_init_adapters_leave_logits_unchanged():
    model = tiny()
    before = model(TOKENS).detach()
    found = apply_lora(model, LoRAConfig(rank=4, alpha=8, targets=ALL))
    assert len(found) == 6 * 2 + 1  # six per-block matrices x 2 blocks, plus the embedding
    assert torch.equal(model(TOKENS).detach(), before)


def test_gradients_reach_only_the_adapters():
    model = tiny()
    apply_lora(model, LoRAConfig(rank=2, targets=ALL))
    perturb(model)  # with B = 0, dL/dA = 0 too; a trained adapter must pass gradient to both factors
    model(TOKENS, return_type="loss").backward()
    for name, p in model.named_parameters():
        if name.endswith(("lora_A", "lora_B")):
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_update_is_the_low_rank_map_per_head():
    """q for head h changes by scale * (x A B)[h*d_head:(h+1)*d_head]; W_O's by z_flat A B; W_E's rows by A B."""
    model = tiny()
    base = {n: getattr(model.blocks[0].attn, n).detach().clone() for n in ("W_Q", "W_O")}
    emb = model.embed.W_E.detach().clone()
    apply_lora(model, LoRAConfig(rank=3, alpha=6, targets=("W_Q", "W_O", "W_E"), embed_rank=5))
    perturb(model)
    attn, scale, e = model.blocks[0].attn, 2.0, model.cfg.d_head
    a = adapters(model)["blocks.0.attn.W_Q"]
    x = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(3))
    low_rank = scale * (x @ a.lora_A @ a.lora_B)
    for h in range(model.cfg.n_heads):
        torch.testing.assert_close(x @ attn.W_Q[h], x @ base["W_Q"][h] + low_rank[h * e:(h + 1) * e])
    o = adapters(model)["blocks.0.attn.W_O"]
    z = torch.randn(model.cfg.n_heads, e, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(torch.einsum("he,hed->d", z, attn.W_O),
                               torch.einsum("he,hed->d", z, base["W_O"]) + scale * (z.reshape(-1) @ o.lora_A @ o.lora_B))
    em = adapters(model)["embed.W_E"]
    assert em.lora_A.shape[1] == 5
    torch.testing.assert_close(model.embed.W_E, emb + scale * em.lora_A @ em.lora_B)


def test_merge_equals_the_unmerged_forward_and_unmerge_restores_the_base():
    model = tiny()
    base = copy.deepcopy(model.state_dict())
    apply_lora(model, LoRAConfig(rank=2, targets=ALL))
    perturb(model)
    unmerged = model(TOKENS).detach()
    merge_lora(model)
    torch.testing.assert_close(model(TOKENS).detach(), unmerged, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(model.blocks[0].attn.parametrizations.W_Q.original, base["blocks.0.attn.W_Q"])
    unmerge_lora(model)
    torch.testing.assert_close(model.blocks[0].attn.parametrizations.W_Q.original, base["blocks.0.attn.W_Q"])
    torch.testing.assert_close(model(TOKENS).detach(), unmerged, rtol=1e-5, atol=1e-5)
    remove_lora(model)  # a plain model again: same keys as a fresh one, same outputs
    assert set(model.state_dict()) == set(base) and not adapters(model)
    torch.testing.assert_close(model(TOKENS).detach(), unmerged, rtol=1e-5, atol=1e-5)


def test_adapters_round_trip_through_safetensors(tmp_path):
    model = tiny()
    fresh_base = copy.deepcopy(model)
    cfg = LoRAConfig(rank=2, alpha=3, targets=("W_V", "W_in", "W_out"))
    apply_lora(model, cfg)
    perturb(model)
    path = save_adapters(model, tmp_path / ADAPTERS_FILE, cfg)
    assert load_adapters(fresh_base, path) == cfg
    torch.testing.assert_close(fresh_base(TOKENS), model(TOKENS))
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        load_adapters(fresh_base, path)


@pytest.mark.parametrize("data, key", [({"rank": 0}, "train.lora.rank"), ({"alpha": -1}, "train.lora.alpha"),
                                       ({"targets": ["W_X"]}, "train.lora.targets"),
                                       ({"ranks": 4}, "train.lora.ranks")])
def test_bad_lora_config_is_refused_naming_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        TrainConfig(max_steps=1, lora=data)


def test_a_target_the_scheme_lacks_is_an_error():
    with pytest.raises(ConfigError, match="W_Q"):
        apply_lora(tiny("uni"), LoRAConfig(targets=("W_Q",)))


def test_training_with_lora_moves_only_the_adapters():
    from train_helpers import CountTask
    from plm_interp.training import TaskSource

    model = tiny()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, TaskSource(CountTask(), 16), TrainConfig(batch_size=4, max_steps=3, lr=1e-2, progress=False,
                                                            lora={"rank": 2, "targets": ["W_Q", "W_V"]})).fit()
    found = adapters(model)
    assert all(a.lora_B.abs().sum() > 0 for a in found.values())
    for key, adapter in found.items():  # the frozen base weight behind each adapter is bit-identical
        owner, name = key.rsplit(".", 1)
        assert torch.equal(model.get_submodule(owner).parametrizations[name].original, base[key])
    assert torch.equal(model.blocks[1].mlp.W_in, base["blocks.1.mlp.W_in"])


def test_cli_lora_run_saves_adapters_and_a_plain_merged_model(tmp_path):
    base_dir, run_dir = tmp_path / "base", tmp_path / "lora"
    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers())
    common = ["train", "count_test", "--set", "train.batch_size=4", "--set", "train.progress=false"]
    args = parser.parse_args([*common, "--set", "model.preset=tiny", "--set", "model.n_ctx=16", "--set",
                              "train.max_steps=2", "--run-dir", str(base_dir)])
    assert args.func(args) == 0
    args = parser.parse_args([*common, "--set", f"train.init_from={base_dir / 'final'}", "--set",
                              "train.max_steps=3", "--set", "train.lr=0.01", "--set",
                              'train.lora={rank = 2, alpha = 4, targets = ["W_V", "W_O"]}', "--run-dir", str(run_dir)])
    assert args.func(args) == 0
    assert json.loads((run_dir / "config.json").read_text())["train"]["lora"]["targets"] == ["W_V", "W_O"]
    merged, base = load_model(run_dir / "final"), load_model(base_dir / "final")
    assert torch.equal(merged.blocks[0].attn.W_Q, base.blocks[0].attn.W_Q)  # not adapted: untouched
    assert not torch.equal(merged.blocks[0].attn.W_V, base.blocks[0].attn.W_V)
    load_adapters(base, run_dir / ADAPTERS_FILE)  # base + saved adapters == the merged final model
    torch.testing.assert_close(base(TOKENS), merged(TOKENS), rtol=1e-5, atol=1e-5)


def test_an_interrupted_lora_run_resumes_exactly(tmp_path, capsys):
    """Checkpoints hold the adapters (and the frozen base): resuming from step 2 of 3 gives the same final model."""
    import shutil

    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers())
    base = tmp_path / "base"
    common = ["train", "count_test", "--set", "train.batch_size=4", "--set", "train.progress=false"]
    args = parser.parse_args([*common, "--set", "model.preset=tiny", "--set", "model.n_ctx=16", "--set",
                              "train.max_steps=1", "--run-dir", str(base)])
    args.func(args)
    lora_run = [*common, "--set", f"train.init_from={base / 'final'}", "--set", "train.max_steps=3", "--set",
                "train.ckpt_every=1", "--set", "train.lr=0.01", "--set", 'train.lora={rank = 2, targets = ["W_Q"]}']
    for name in ("whole", "interrupted"):
        args = parser.parse_args([*lora_run, "--run-dir", str(tmp_path / name), "--resume"])
        args.func(args)
    cut = tmp_path / "interrupted"
    shutil.rmtree(cut / "final")
    (cut / ADAPTERS_FILE).unlink()
    shutil.rmtree(cut / "checkpoints" / "step_00000003")  # killed during step 3
    args = parser.parse_args([*lora_run, "--run-dir", str(cut), "--resume"])
    capsys.readouterr()
    assert args.func(args) == 0
    err = capsys.readouterr().err
    assert "resumed from" in err and "step 2 of 3" in err  # continued, not restarted
    whole, resumed = load_model(tmp_path / "whole" / "final"), load_model(cut / "final")
    for (k, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
