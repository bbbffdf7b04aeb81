import itertools
import json

import numpy as np
import pytest
import torch

import tasks
from tasks.base import Batch, Task
from tasks.cfg import BOS, EOS, MASK, PAD, CFGTask, load_builtin, parse_text, random_bags


def test_contract_and_registration():
    t = CFGTask("demo")
    assert isinstance(t, Task) and t.kind == "cfg" and "cfg" in tasks.task_names()
    assert (PAD, BOS, EOS, MASK) == (0, 1, 2, 3) and t.d_vocab == 4 + 3
    assert tasks.from_spec(json.loads(json.dumps(t.spec()))) == t


def test_inline_grammar_is_fully_serialised():
    g = parse_text("S -> A B | B A\nA -> x y | y\nB -> y x x | x\n", name="mine")
    t = CFGTask(g, implicit={"bags": [[0, 1], [1, 2]]}, corrupt_frac=0.1)
    spec = json.loads(json.dumps(t.spec()))
    assert isinstance(spec["grammar"], dict)
    t2 = tasks.from_spec(spec)
    assert t2 == t and t2.grammar == g and t2.d_vocab == 4 + 3
    # a user grammar that merely shares a built-in's name is not replaced by the built-in
    fake = parse_text("S -> A A\nA -> x\n", name="cfg3f")
    assert isinstance(CFGTask(fake).spec()["grammar"], dict)


def test_packed_batches_are_reproducible_and_skippable():
    t = CFGTask("demo")
    first = list(itertools.islice(t.batches(4, 128, seed=3), 3))
    again = next(t.batches(4, 128, seed=3, start=2))
    assert torch.equal(first[2].tokens, again.tokens)
    assert not torch.equal(first[0].tokens, first[1].tokens)
    assert isinstance(first[0], Batch) and first[0].tokens.shape == (4, 128) and first[0].tokens.dtype == torch.long
    flat = first[0].tokens.reshape(-1).numpy()          # rows of one batch are consecutive stream chunks
    assert flat[0] == BOS and PAD not in flat and MASK not in flat
    # every complete BOS x EOS segment is in the language
    bos = np.nonzero(flat == BOS)[0]
    rows = [flat[a:b] for a, b in zip(bos[:-1], bos[1:])]
    assert all(r[-1] == EOS for r in rows)
    assert t.accepts([list(r) for r in rows]).all()
    with pytest.raises(ValueError, match="n_ctx"):
        next(t.batches(4, 0, seed=0))


def test_mlm_stream():
    t = CFGTask("demo", mask_rate=0.15)
    b = next(t.mlm_batches(8, 256, seed=0))
    sel = b.loss_mask
    assert abs(sel.float().mean().item() - 0.15) < 0.03
    assert torch.equal(b.tokens[~sel], b.targets[~sel])
    assert (b.tokens[sel] == MASK).float().mean() > 0.7
    assert torch.equal(next(t.mlm_batches(8, 256, seed=0)).tokens, b.tokens)


def test_sample_annotations_align_with_tokens():
    t = CFGTask("cfg3f")
    s = t.sample(5, seed=1)
    assert s.tokens.shape[0] == 5 and s.s.shape[-1] == 6
    for i, x in enumerate(s.strings()):
        n = len(x)
        row = s.tokens[i]
        assert row[0] == BOS and row[n + 1] == EOS and (row[n + 2:] == PAD).all()
        assert torch.equal(row[1:n + 1] - 4, torch.from_numpy(x))
        assert s.terminal_mask[i].sum() == n and (s.s[i, 0] == -1).all() and (s.s[i, 1:n + 1] >= 0).all()
        assert torch.equal(s.b[i, 1:n + 1], torch.from_numpy(s.labels[i].b))
    assert t.accepts(s.tokens).all()
    assert torch.equal(t.sample(5, seed=1).tokens, s.tokens)


def test_true_next_token_logprobs_alignment():
    t = CFGTask("demo")
    s = t.sample(3)
    lp = t.true_next_token_logprobs(s)
    for i in range(3):
        n = int(s.lengths[i])
        nxt = s.tokens[i, 1:n + 2]
        got = lp[i, torch.arange(n + 1), nxt]
        assert torch.isfinite(got).all()
        assert torch.allclose(lp[i, : n + 1].exp().sum(-1), torch.ones(n + 1, dtype=torch.float64))
        assert torch.isnan(lp[i, n + 1:]).all()


def test_presets_and_bad_input():
    p = CFGTask("cfg3f").presets()
    assert p["paper"]["model"] == {"n_layers": 12, "n_heads": 12, "d_model": 768, "n_ctx": 512}
    assert p["paper"]["train"]["batch_size"] == 96 and p["paper"]["train"]["max_steps"] == 100_000
    assert p["paper"]["train"]["betas"] == [0.9, 0.98] and p["paper"]["train"]["weight_decay"] == 0.1
    with pytest.raises(ValueError, match="mask_rate"):
        CFGTask("demo", mask_rate=2)
    with pytest.raises(ValueError, match="'nope' is neither a built-in"):
        CFGTask("nope")
    with pytest.raises(ValueError, match="unknown field"):
        CFGTask.from_spec({"kind": "cfg", "grammar": "demo", "colour": 1})


def test_implicit_task():
    t = CFGTask("demo", implicit={"bags": random_bags(3, 2, seed=0)})
    assert t.d_vocab == 4 + 6
    s = t.sample(4)
    assert t.accepts(s.tokens).all() and s.s.shape[-1] == 5        # extra level: the hidden terminal
