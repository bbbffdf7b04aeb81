"""Issue 34 side by side: the researcher calls of tests/test_model_tl_researcher.py on HookedPLM and on TL 3.9's own
HookedTransformer given the same weights (and our Hugging Face tokenizer) give the same results.

Runs only on the TL 3.x line (``bash scripts/test_other_tl.sh``), where HookedTransformer exists.
"""
import pytest
import torch
from transformer_lens.head_detector import detect_head

from plm_interp import HookedPLM, preset_config
from tasks.cfg import CFGTask
from tests.conftest import tiny_model
from tests_other_tl.test_tl3_equivalence import tl_twin


def _pair(scheme="rot", task=False, **kw):
    if task:
        t = CFGTask("demo")
        model = HookedPLM(preset_config("tiny", d_vocab=t.d_vocab, n_ctx=32, seed=0, task=t.spec(),
                                        positional=scheme, dtype="float64", rotary_dim=4, **kw))
    else:
        model = tiny_model(scheme, dtype="float64", rotary_dim=4, **kw)
    twin = tl_twin(model)
    if task:
        # TL reads self.tokenizer: our Hugging Face tokenizer, unchanged. (TL's set_tokenizer would reload it from
        # the hub by name with add_bos_token=True; an in-memory tokenizer has no name, so set what it computes.)
        twin.tokenizer = model.tokenizer
        twin.cfg.tokenizer_prepends_bos = len(model.tokenizer.encode("")) > 0
    return model, twin


def _prompt():
    return torch.tensor([[1, 4, 5, 6], [1, 6, 5, 4]])


def test_generate_defaults_and_output_logits_match():
    model, twin = _pair(task=True)
    ours = model.generate(_prompt(), do_sample=False, stop_at_eos=False)
    theirs = twin.generate(_prompt(), do_sample=False, stop_at_eos=False, verbose=False)
    assert ours.shape == theirs.shape == (2, 14)  # TL's default: 10 new tokens
    assert torch.equal(ours, theirs)
    ours = model.generate(_prompt(), do_sample=False, output_logits=True)  # stops at the tokenizer's EOS
    theirs = twin.generate(_prompt(), do_sample=False, output_logits=True, verbose=False)
    assert torch.equal(ours.sequences, theirs.sequences)
    assert len(ours.logits) == len(theirs.logits)
    for a, b in zip(ours.logits, theirs.logits):
        torch.testing.assert_close(a, b)


def test_the_hf_tokenizer_works_inside_hooked_transformer():
    model, twin = _pair(task=True)
    for text in ("a c b", "<bos> a b"):
        assert torch.equal(twin.to_tokens(text, prepend_bos=False), model.to_tokens(text, prepend_bos=False))
        assert twin.to_str_tokens(text, prepend_bos=False) == model.to_str_tokens(text, prepend_bos=False)
    assert twin.to_single_token("b") == model.to_single_token("b")
    assert twin.to_string(torch.tensor([1, 4, 2])) == model.to_string(torch.tensor([1, 4, 2]))
    torch.testing.assert_close(model.tokens_to_residual_directions("b"), twin.tokens_to_residual_directions("b"))
    assert twin.get_token_position("b", "a b c b", mode="last", prepend_bos=False) == \
        model.get_token_position("b", "a b c b", mode="last", prepend_bos=False)


def test_cfg_fields_and_detect_head_match():
    model, twin = _pair(task=True)
    assert model.cfg.dtype == twin.cfg.dtype and model.cfg.n_params == twin.cfg.n_params
    assert model.cfg.gated_mlp == twin.cfg.gated_mlp
    for kind in ("previous_token_head", "duplicate_token_head"):
        torch.testing.assert_close(detect_head(model, "a b c a b c", kind), detect_head(twin, "a b c a b c", kind))


@pytest.mark.parametrize("scheme", ["abs", "rot"])
def test_factored_circuits_and_composition_scores_match(scheme):
    model, twin = _pair(scheme, n_layers=3)
    for name in ("OV", "QK"):
        torch.testing.assert_close(getattr(model, name).AB, getattr(twin, name).AB)
        torch.testing.assert_close(getattr(model.blocks[2].attn, name).AB, getattr(twin.blocks[2].attn, name).AB)
    for mode in "QKV":
        torch.testing.assert_close(model.all_composition_scores(mode), twin.all_composition_scores(mode))
    if scheme == "abs":
        torch.testing.assert_close(model.W_E_pos, twin.W_E_pos)


def test_hook_switches_give_the_same_caches(tokens):
    model, twin = _pair("rot")
    for m in (model, twin):
        m.set_use_attn_result(True)
        m.set_use_split_qkv_input(True)
        m.set_use_hook_mlp_in(True)
    ours_logits, ours = model.run_with_cache(tokens)
    tl_logits, theirs = twin.run_with_cache(tokens)
    torch.testing.assert_close(ours_logits, tl_logits)
    for l in range(model.cfg.n_layers):
        for name in ("attn.hook_result", "hook_q_input", "hook_k_input", "hook_v_input", "hook_mlp_in",
                     "attn.hook_pattern", "ln1.hook_normalized"):
            key = f"blocks.{l}.{name}"
            torch.testing.assert_close(ours[key], theirs[key], msg=key)
    torch.testing.assert_close(ours.stack_head_results(), theirs.stack_head_results())


def test_loss_fn_matches(tokens):
    model, twin = _pair("rot")
    logits = model(tokens)
    mask = torch.ones_like(tokens)
    mask[1, -4:] = 0
    for kwargs in ({}, {"per_token": True}, {"attention_mask": mask}, {"attention_mask": mask, "per_token": True}):
        torch.testing.assert_close(model.loss_fn(logits, tokens, **kwargs), twin.loss_fn(logits, tokens, **kwargs))


@pytest.mark.parametrize("step", ["fold_layer_norm", "center_writing_weights", "center_unembed", "fold_value_biases"])
def test_state_dict_processing_matches(step):
    model, twin = _pair("abs")
    ours = getattr(model, step)(model.state_dict())
    theirs = getattr(twin, step)(twin.state_dict())
    shared = sorted(set(ours) & set(theirs))
    assert len(shared) >= 10
    for k in shared:
        torch.testing.assert_close(ours[k], theirs[k], msg=k)
    # TL drops the folded LayerNorms' keys (LNPre has none); ours keeps them at w = 1, b = 0
    for k in set(ours) - set(theirs):
        assert k.split(".")[-2].startswith("ln") or k.startswith("ln_final"), k
        assert torch.equal(ours[k], torch.ones_like(ours[k]) if k.endswith(".w") else torch.zeros_like(ours[k]))


def test_load_and_process_state_dict_matches(tokens):
    model, twin = _pair("rot")
    sd = model.state_dict()
    model.load_and_process_state_dict(sd)
    twin.load_and_process_state_dict(twin.state_dict())
    assert model.cfg.normalization_type == twin.cfg.normalization_type == "LNPre"
    for name in ("W_Q", "W_K", "W_V", "W_O", "b_O", "W_in", "b_in", "W_out", "W_E", "W_U", "b_U"):
        torch.testing.assert_close(getattr(model, name), getattr(twin, name), atol=1e-6, rtol=1e-6, msg=name)
    torch.testing.assert_close(model(tokens), twin(tokens), atol=1e-5, rtol=1e-5)
