"""Issue 34: ordinary TransformerLens researcher code runs unchanged on HookedPLM, one test group per item.

On this TL line (4.x, no HookedTransformer) each check compares with TL's own code where it exists (TL's
``TransformerBridge.generate`` defaults, ``lm_cross_entropy_loss``, ``composition_scores``, ``FactoredMatrix``,
``head_detector.detect_head``, ``ActivationCache.logit_attrs``) or with TL's documented definition. The same calls
are compared with TL 3.9's HookedTransformer given the same weights in tests_other_tl/test_tl3_researcher.py.
"""
import inspect
import json

import pytest
import torch
from transformer_lens import ActivationCache, FactoredMatrix

from plm_interp import HookedPLM, preset_config
from tasks.cfg import CFGTask
from tests.conftest import tiny_model

EOS = 2  # the CFG tasks' EOS id


@pytest.fixture(scope="module")
def cfg_model():
    task = CFGTask("demo")
    return HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=32, seed=0, task=task.spec()))


# -- 1. generate -------------------------------------------------------------------------------------------------
def test_generate_defaults_are_transformer_lens_defaults():
    from transformer_lens.model_bridge import TransformerBridge

    tl = inspect.signature(TransformerBridge.generate).parameters
    ours = inspect.signature(__import__("plm_interp.generation", fromlist=["generate"]).generate).parameters
    assert ours["max_new_tokens"].default == tl["max_new_tokens"].default == 10
    assert ours["stop_at_eos"].default is tl["stop_at_eos"].default is True
    model = tiny_model("rot")  # no tokenizer, so nothing stops early
    assert model.generate(torch.tensor([[1, 2, 3]]), do_sample=False).shape == (1, 13)
    assert model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=None, do_sample=False).shape == (1, 48)


def _force(token: int):
    def hook(logits, hook):
        logits[..., token] += 1e4
        return logits
    return [("unembed.hook_out", hook)]


def test_stop_at_eos_uses_the_tokenizers_eos_when_no_id_is_given(cfg_model):
    prompt = torch.tensor([[1, 4, 5]])
    with cfg_model.hooks(fwd_hooks=_force(EOS)):
        stopped = cfg_model.generate(prompt, do_sample=False)
        free = cfg_model.generate(prompt, do_sample=False, stop_at_eos=False)
    assert cfg_model.tokenizer.eos_token_id == EOS
    assert stopped.tolist() == [[1, 4, 5, EOS]]
    assert free.shape == (1, 13) and bool((free[0, 3:] == EOS).all())


def test_output_logits_returns_sequences_and_the_logits_of_each_step(cfg_model):
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    prompt = torch.tensor([[1, 4, 5], [1, 6, 4]])
    out = cfg_model.generate(prompt, max_new_tokens=5, do_sample=False, stop_at_eos=False, output_logits=True)
    assert isinstance(out, GenerateDecoderOnlyOutput)
    assert torch.equal(out.sequences, cfg_model.generate(prompt, max_new_tokens=5, do_sample=False, stop_at_eos=False))
    assert len(out.logits) == 5
    for i, step in enumerate(out.logits):
        full = cfg_model(out.sequences[:, : 3 + i])[:, -1]
        torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-5)
        assert torch.equal(step.argmax(-1), out.sequences[:, 3 + i])


# -- 2. tokenizer (more in tests/test_hf_tokenizer.py) -----------------------------------------------------------
def test_model_tokenizer_is_a_hugging_face_tokenizer_and_set_tokenizer_attaches_one(cfg_model):
    from transformers import PreTrainedTokenizerBase

    tok = cfg_model.tokenizer
    assert isinstance(tok, PreTrainedTokenizerBase)
    assert tok("a c b")["input_ids"] == cfg_model.to_tokens("a c b")[0].tolist()
    batch = tok(["a b c", "a"], return_tensors="pt", padding=True)
    assert batch["input_ids"].tolist() == [[4, 5, 6], [4, 0, 0]]
    assert tok.batch_decode(batch["input_ids"], skip_special_tokens=True) == ["a b c", "a"]
    model = tiny_model("rot", d_vocab=7)
    model.set_tokenizer(CFGTask("demo").tokenizer, default_padding_side="left")
    assert isinstance(model.tokenizer, PreTrainedTokenizerBase) and model.tokenizer.padding_side == "left"
    assert model.to_tokens(["a b c", "a"]).tolist() == [[4, 5, 6], [0, 0, 4]]  # TL: padding side from the tokenizer
    model.set_tokenizer(tok)  # a Hugging Face tokenizer is taken as it is
    assert model.tokenizer is tok


# -- 3. cfg ------------------------------------------------------------------------------------------------------
def test_cfg_dtype_is_a_torch_dtype_and_the_config_still_saves_as_json(tmp_path):
    model = tiny_model("abs", dtype="float64")
    assert model.cfg.dtype is torch.float64
    assert torch.zeros(2, dtype=model.cfg.dtype).dtype == torch.float64
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["config"]
    assert saved["dtype"] == "float64"
    assert HookedPLM.from_pretrained(tmp_path).cfg.dtype is torch.float64
    assert preset_config("tiny", d_vocab=5, n_ctx=8, dtype=torch.bfloat16).dtype is torch.bfloat16


def test_cfg_has_the_fields_transformer_lens_code_reads():
    cfg = tiny_model("rot").cfg
    # TL's HookedTransformerConfig.set_n_params: per layer 4 d_model*d_head*n_heads (Q, K, V, O) + 2 d_model*d_mlp
    assert cfg.n_params == cfg.n_layers * (4 * cfg.d_model * cfg.d_head * cfg.n_heads + 2 * cfg.d_model * cfg.d_mlp)
    assert (cfg.original_architecture, cfg.tokenizer_name, cfg.tokenizer_prepends_bos, cfg.init_mode,
            cfg.gated_mlp) == (None, None, False, "gpt2", False)


def test_transformer_lens_detect_head_runs(cfg_model):
    from transformer_lens.head_detector import detect_head

    scores = detect_head(cfg_model, "<bos> a b c a b c", "previous_token_head")
    assert scores.shape == (cfg_model.cfg.n_layers, cfg_model.cfg.n_heads)
    assert bool(((scores >= -1) & (scores <= 1)).all())


# -- 4. weight views ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["abs", "rot", "rel"])
def test_ov_and_qk_are_factored_matrices_of_the_weights(scheme):
    model = tiny_model(scheme, dtype="float64")
    assert isinstance(model.OV, FactoredMatrix) and isinstance(model.blocks[1].attn.QK, FactoredMatrix)
    torch.testing.assert_close(model.OV.AB, model.W_V @ model.W_O)
    torch.testing.assert_close(model.QK.AB, model.W_Q @ model.W_K.transpose(-2, -1))
    torch.testing.assert_close(model.blocks[1].attn.OV.AB, model.OV.AB[1])
    torch.testing.assert_close(model.blocks[1].attn.QK.AB, model.QK.AB[1])


def test_position_only_heads_have_no_qk_circuit_and_say_so():
    with pytest.raises(AttributeError, match="positions only"):
        tiny_model("pos").blocks[0].attn.QK


def test_all_composition_scores_are_tl_composition_scores_of_earlier_into_later_heads():
    from transformer_lens.utilities import composition_scores

    model = tiny_model("abs", dtype="float64", n_layers=3)
    for mode, right in (("Q", model.QK), ("K", model.QK.T), ("V", model.OV)):
        scores = model.all_composition_scores(mode)
        assert scores.shape == (3, 4, 3, 4)
        for l1, h1, l2, h2 in torch.cartesian_prod(*map(torch.arange, (3, 4, 3, 4))).tolist():
            expected = composition_scores(model.OV[l1, h1], right[l2, h2]) if l1 < l2 else torch.tensor(0.0)
            torch.testing.assert_close(scores[l1, h1, l2, h2], expected.to(scores.dtype))
    with pytest.raises(ValueError, match="mode"):
        model.all_composition_scores("O")


def test_w_e_pos_stacks_token_and_position_embeddings():
    model = tiny_model("abs")
    torch.testing.assert_close(model.W_E_pos, torch.cat([model.W_E, model.W_pos]))
    with pytest.raises(AttributeError, match="W_E_pos exists only for .* position embedding"):
        tiny_model("rot").W_E_pos


def test_string_tokens_in_residual_directions_and_logit_attrs(cfg_model):
    b = cfg_model.to_single_token("b")
    torch.testing.assert_close(cfg_model.tokens_to_residual_directions("b"), cfg_model.W_U[:, b])
    _, cache = cfg_model.run_with_cache(cfg_model.to_tokens("a c b a"))
    stack = cache.decompose_resid(pos_slice=-1)
    assert isinstance(cache, ActivationCache)
    torch.testing.assert_close(cache.logit_attrs(stack, tokens="b", pos_slice=-1),
                               cache.logit_attrs(stack, tokens=b, pos_slice=-1))
    torch.testing.assert_close(cache.logit_attrs(stack, tokens="b", incorrect_tokens="c", pos_slice=-1),
                               cache.logit_attrs(stack, tokens=b, incorrect_tokens=cfg_model.to_single_token("c"),
                                                 pos_slice=-1))


# -- 5. hook switches, unembed hooks, loss_fn, get_token_position ------------------------------------------------
@pytest.mark.parametrize("scheme", ["rot", "uni"])
def test_use_attn_result_caches_each_heads_output(scheme, tokens):
    model = tiny_model(scheme, dtype="float64")
    logits, before = model.run_with_cache(tokens)
    model.set_use_attn_result(True)
    after_logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(after_logits, logits)
    for l in range(model.cfg.n_layers):
        result = cache["result", l]
        assert result.shape == (*tokens.shape, model.cfg.n_heads, model.cfg.d_model)
        torch.testing.assert_close(result.sum(-2) + model.blocks[l].attn.b_O, cache["attn_out", l])
        # TL's definition: head h's output is z[..., h, :] @ W_O[h]
        torch.testing.assert_close(result, torch.einsum("bphe,hed->bphd", before["z", l], model.W_O[l]))
    torch.testing.assert_close(cache.stack_head_results(), before.stack_head_results())
    model.set_use_attn_result(False)
    assert "blocks.0.attn.hook_result" not in model.run_with_cache(tokens)[1]


@pytest.mark.parametrize("scheme", ["rot", "pos"])
def test_split_qkv_input_gives_each_head_its_own_input(scheme, tokens):
    model = tiny_model(scheme, dtype="float64")
    logits, clean = model.run_with_cache(tokens)
    model.set_use_split_qkv_input(True)
    split_logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(split_logits, logits)
    for name in ("q_input", "k_input", "v_input"):
        x = cache[f"blocks.1.hook_{name}"]
        assert x.shape == (*tokens.shape, model.cfg.n_heads, model.cfg.d_model)
        torch.testing.assert_close(x, cache["resid_pre", 1][:, :, None].expand_as(x))

    def zero_head0(x, hook):
        x[:, :, 0] = 0.0
        return x
    with model.hooks(fwd_hooks=[("blocks.1.hook_v_input", zero_head0)]):
        _, patched = model.run_with_cache(tokens)
    # only head 0's values change in layer 1
    assert not torch.allclose(patched["v", 1][:, :, 0], clean["v", 1][:, :, 0])
    torch.testing.assert_close(patched["v", 1][:, :, 1:], clean["v", 1][:, :, 1:])
    model.set_use_split_qkv_input(False)


def test_attn_in_and_hook_mlp_in(tokens):
    model = tiny_model("abs", dtype="float64")
    logits = model(tokens)
    model.set_use_hook_mlp_in(True)
    model.set_use_attn_in(True)
    out, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(out, logits)
    torch.testing.assert_close(cache["mlp_in", 0], cache["resid_mid", 0])
    assert cache["attn_in", 1].shape == (*tokens.shape, model.cfg.n_heads, model.cfg.d_model)
    with pytest.raises(TypeError, match="bool"):
        model.set_use_hook_mlp_in("yes")


def test_unembed_hooks_hold_its_input_and_the_logits(tokens):
    model = tiny_model("rot")
    logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(cache["unembed.hook_out"], logits)
    ln = model.ln_final
    torch.testing.assert_close(cache["unembed.hook_in"], cache["ln_final.hook_normalized"] * ln.w + ln.b)


def test_loss_fn_is_tl_lm_cross_entropy_loss(tokens):
    from transformer_lens.utilities import lm_cross_entropy_loss

    model = tiny_model("rot")
    logits = model(tokens)
    torch.testing.assert_close(model.loss_fn(logits, tokens), lm_cross_entropy_loss(logits, tokens))
    torch.testing.assert_close(model.loss_fn(logits, tokens), model(tokens, return_type="loss"))
    mask = torch.ones_like(tokens)
    mask[0, -5:] = 0
    for per_token in (False, True):
        torch.testing.assert_close(model.loss_fn(logits, tokens, attention_mask=mask, per_token=per_token),
                                   lm_cross_entropy_loss(logits, tokens, mask, per_token))


def test_get_token_position(cfg_model):
    assert cfg_model.get_token_position("b", "a b c b") == 1
    assert cfg_model.get_token_position("b", "a b c b", mode="last") == 3
    assert cfg_model.get_token_position("b", "a b c b", prepend_bos=True) == 2
    tokens = cfg_model.to_tokens("a b c b")
    assert cfg_model.get_token_position(cfg_model.to_single_token("c"), tokens) == 2
    assert cfg_model.get_token_position("c", tokens[0]) == 2
    with pytest.raises(ValueError, match="does not occur"):
        cfg_model.get_token_position("a", "b c")
    with pytest.raises(ValueError, match="mode"):
        cfg_model.get_token_position("b", "a b", mode="middle")


# -- 6. weight processing with TL's signatures ---------------------------------------------------------------------
STEPS = ["fold_layer_norm", "center_writing_weights", "center_unembed", "fold_value_biases"]


@pytest.mark.parametrize("step", STEPS)
def test_state_dict_forms_return_the_processed_dict_and_leave_the_model_alone(step):
    import copy

    model = tiny_model("abs", dtype="float64")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd = getattr(model, step)(model.state_dict())
    assert isinstance(sd, dict) and set(sd) == set(before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{step}(state_dict) changed the model's {k}"
    in_place = copy.deepcopy(model)
    assert getattr(in_place, step)() is None  # the no-argument form: in place, as before
    for k, v in in_place.state_dict().items():
        torch.testing.assert_close(sd[k], v, msg=k)


@pytest.mark.bad_input
def test_a_bool_where_the_state_dict_goes_is_a_clear_error():
    model = tiny_model("rot")
    with pytest.raises(TypeError, match="state dict"):
        model.fold_layer_norm(False)


def test_load_and_process_state_dict_and_lnpre(tokens):
    model = tiny_model("rot", dtype="float64")
    twin = tiny_model("rot", dtype="float64")
    logits = model(tokens)
    twin.load_and_process_state_dict(model.state_dict())
    model.process_weights_()
    assert model.cfg.normalization_type == twin.cfg.normalization_type == "LNPre"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(twin.state_dict()[k], v, msg=k)
    torch.testing.assert_close(model(tokens).log_softmax(-1), logits.log_softmax(-1))
    with pytest.raises(NotImplementedError, match="refactor"):
        twin.load_and_process_state_dict(model.state_dict(), refactor_factored_attn_matrices=True)


def test_switches_and_lnpre_stay_on_their_own_model():
    """A model copies its config: a switch or process_weights_ on one model never reaches another built from the
    same config object (a random-init control), and switches are not part of a config's identity."""
    from tests.conftest import tiny_config

    cfg = tiny_config("rot")
    a, b = HookedPLM(cfg), HookedPLM(cfg)
    a.set_use_attn_result(True)
    a.process_weights_()
    assert not b.cfg.use_attn_result and b.cfg.normalization_type == "LN" and cfg.normalization_type == "LN"
    fresh = HookedPLM(cfg)
    fresh.set_use_hook_mlp_in(True)
    assert fresh.cfg == cfg
