"""generate(): the KV cache changes nothing, sampling options behave, uneven prompts are handled."""
import pytest
import torch

from tests.conftest import tiny_model


def _greedy_loop(model, tokens, n):
    """The reference: no cache, full forward each step, argmax."""
    for _ in range(n):
        nxt = model(tokens)[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, nxt], 1)
    return tokens


def test_cached_greedy_equals_plain_loop_to_the_end_of_the_context(scheme):
    model = tiny_model(scheme)
    prompt = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(7))
    n_new = model.cfg.n_ctx - 5  # runs through positions past half the context
    cached = model.generate(prompt, max_new_tokens=n_new, temperature=0)
    assert cached.shape == (3, model.cfg.n_ctx)
    assert torch.equal(cached, _greedy_loop(model, prompt, n_new))
    assert torch.equal(cached, model.generate(prompt, max_new_tokens=n_new, temperature=0, use_past_kv_cache=False))


def test_cache_matches_from_a_long_prompt():
    """abs positions well past n_ctx / 2 in the prompt itself."""
    model = tiny_model("abs")
    prompt = torch.randint(0, 11, (2, 30), generator=torch.Generator().manual_seed(8))
    assert torch.equal(model.generate(prompt, max_new_tokens=18, temperature=0), _greedy_loop(model, prompt, 18))


def test_sampling_is_seeded_and_top_k_restricts_support():
    model = tiny_model("rot")
    prompt = torch.zeros(64, 1, dtype=torch.long)
    a = model.generate(prompt, max_new_tokens=4, seed=3)
    b = model.generate(prompt, max_new_tokens=4, seed=3)
    assert torch.equal(a, b)
    assert len({tuple(r.tolist()) for r in a}) > 1  # temperature 1 samples differ across rows
    top1 = model.generate(prompt, max_new_tokens=4, seed=5, top_k=1)
    assert torch.equal(top1, model.generate(prompt, max_new_tokens=4, temperature=0))
    top2 = model.generate(prompt[:, :1], max_new_tokens=1, seed=9, top_k=2)[:, 1]
    allowed = set(torch.topk(model(prompt[:1])[0, -1], 2).indices.tolist())
    assert set(top2.tolist()) <= allowed and len(set(top2.tolist())) == 2


def test_stop_at_eos_pads_finished_rows_and_list_prompts_of_different_lengths():
    model = tiny_model("rot")
    prompts = [[1, 2, 3], [4], [5, 6, 7], [8, 9]]
    greedy = [_greedy_loop(model, torch.tensor([p]), 6)[0] for p in prompts]
    eos = int(greedy[0][3])  # the first token the model emits after prompt 0
    out = model.generate(prompts, max_new_tokens=6, temperature=0, eos_token_id=eos)
    for p, ref, got in zip(prompts, greedy, out):
        new = ref[len(p):].tolist()
        cut = new[: new.index(eos) + 1] if eos in new else new
        assert got.tolist() == p + cut
    alone = model.generate(torch.tensor([prompts[0]]), max_new_tokens=6, temperature=0, eos_token_id=eos)
    assert alone.shape == (1, 4)  # stops once every row has emitted EOS
    both = model.generate(torch.tensor([prompts[0], prompts[2]]), max_new_tokens=6, temperature=0, eos_token_id=eos)
    assert both[0, 3:].tolist() == [eos] * (both.shape[1] - 3)  # a finished row is padded with EOS
    assert both[1].tolist()[: len(out[2])] == out[2].tolist()


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_new_tokens=100), "n_ctx"),
    (dict(temperature=-1), "temperature"),
    (dict(top_k=0), "top_k"),
])
def test_bad_generation_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_model("rot").generate(torch.tensor([[1, 2]]), **kwargs)


def test_encoder_cannot_generate():
    with pytest.raises(ValueError, match="bidirectional"):
        tiny_model("rel", attention_dir="bidirectional").generate(torch.tensor([[1]]), max_new_tokens=1)


def test_the_growing_cache_equals_concatenation_and_keeps_earlier_views():
    """Appends write into spare room (no copy per token); a view taken earlier (cut_cache) keeps its values,
    and a cut cache that grows on its own does not write into the original's room."""
    from plm_interp.generation import cut_cache
    from plm_interp.model.kv_cache import KVCache

    torch.manual_seed(0)
    cache, ref = KVCache.empty(1), []
    for step in range(40):
        k, v = torch.randn(2, 1 if step else 3, 2, 4), torch.randn(2, 1 if step else 3, 2, 4)
        ref.append((k, v))
        got_k, got_v = cache.entries[0].append(k, v)
        if step == 10:
            early = cut_cache(cache, 5)
            early_k = early.entries[0].k.clone()
    assert torch.equal(got_k, torch.cat([k for k, _ in ref], 1)) and torch.equal(got_v, torch.cat([v for _, v in ref], 1))
    assert torch.equal(early.entries[0].k, early_k)
    branch_k, _ = early.entries[0].append(torch.ones(2, 1, 2, 4), torch.ones(2, 1, 2, 4))
    assert torch.equal(branch_k[:, 5], torch.ones(2, 2, 4)) and torch.equal(cache.entries[0].k, got_k)


def test_generate_runs_fused_yet_transformerlens_hooks_see_every_step_and_the_setting_is_restored():
    model = tiny_model("rot")
    prompt = torch.randint(0, 11, (2, 4), generator=torch.Generator().manual_seed(1))
    seen = []
    model.add_hook("blocks.0.attn.hook_pattern", lambda x, hook: seen.append(tuple(x.shape)))
    try:
        hooked = model.generate(prompt, max_new_tokens=3, temperature=0)
    finally:
        model.reset_hooks()
    assert seen == [(2, model.cfg.n_heads, 4, 4), (2, model.cfg.n_heads, 1, 5), (2, model.cfg.n_heads, 1, 6)]
    assert model.fast_path == "train"
    assert torch.equal(hooked, model.generate(prompt, max_new_tokens=3, temperature=0))
