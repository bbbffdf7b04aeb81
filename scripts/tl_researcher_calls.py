"""The researcher calls of issue 34 (TransformerLens code that failed on HookedPLM) run on the shipped demo-rot:
one line per failing call and the count of those that work. Usage: python scripts/tl_researcher_calls.py

The tests (tests/test_model_tl_researcher.py, tests_other_tl/test_tl3_researcher.py) check the results; this
script only says which calls run, for a quick look on an installed copy."""
import torch, traceback
from plm_interp.pretrained import load_pretrained
model = load_pretrained("demo-rot")
tokens = model.to_tokens("a b c a b", prepend_bos=True)
results = []
def check(name, fn):
    try:
        ok = fn()
        results.append((name, ok is not False))
    except Exception as e:
        results.append((name, False)); print(f"   {name}: {type(e).__name__}: {str(e)[:100]}")
tok = lambda: model.tokenizer
def gen_default():
    return model.generate(tokens, do_sample=False, stop_at_eos=False).shape[1] == tokens.shape[1] + 10
def gen_eos():
    def f(logits, hook): logits[..., 2] += 1e4; return logits
    with model.hooks(fwd_hooks=[("unembed.hook_out", f)]):
        return model.generate(tokens, do_sample=False).shape[1] == tokens.shape[1] + 1
check("generate default max_new_tokens=10", gen_default)
check("generate stop_at_eos uses tokenizer EOS", gen_eos)
check("generate output_logits", lambda: len(model.generate(tokens, max_new_tokens=3, output_logits=True, stop_at_eos=False).logits) == 3)
check("tokenizer(text)['input_ids']", lambda: tok()("a b")["input_ids"])
check("tokenizer(list, return_tensors, padding)", lambda: tok()(["a b", "a"], return_tensors="pt", padding=True)["input_ids"].shape == (2, 2))
check("batch_decode", lambda: tok().batch_decode([[4, 5]]))
check("bos_token", lambda: tok().bos_token is not None)
check("eos_token", lambda: tok().eos_token is not None)
check("pad_token", lambda: tok().pad_token is not None)
check("*_token_id", lambda: None not in (tok().bos_token_id, tok().eos_token_id, tok().pad_token_id))
check("vocab_size", lambda: tok().vocab_size == model.cfg.d_vocab)
check("len(tokenizer)", lambda: len(tok()) == model.cfg.d_vocab)
check("get_vocab", lambda: len(tok().get_vocab()) == model.cfg.d_vocab)
check("convert_ids_to_tokens", lambda: tok().convert_ids_to_tokens([4]))
check("convert_tokens_to_ids", lambda: tok().convert_tokens_to_ids(["a"]))
check("padding_side", lambda: tok().padding_side in ("left", "right"))
check("set_tokenizer", lambda: model.set_tokenizer(model.tokenizer) or True)
check("cfg.dtype torch.dtype", lambda: torch.zeros(1, dtype=model.cfg.dtype) is not None)
def dh():
    from transformer_lens.head_detector import detect_head
    return detect_head(model, "a b c a b c", "previous_token_head").shape
check("head_detector.detect_head", dh)
for f in ("n_params", "original_architecture", "tokenizer_name", "tokenizer_prepends_bos", "init_mode", "gated_mlp"):
    check(f"cfg.{f}", lambda f=f: hasattr(model.cfg, f) or False)
check("model.OV", lambda: model.OV.AB.shape)
check("model.QK", lambda: model.QK.AB.shape)
check("blocks[0].attn.OV/QK", lambda: (model.blocks[0].attn.OV.AB.shape, model.blocks[0].attn.QK.AB.shape))
check("all_composition_scores", lambda: model.all_composition_scores("Q").shape)
def wep():
    from plm_interp import HookedPLM
    m = HookedPLM(model.cfg.replace(positional="abs"))
    return m.W_E_pos.shape
check("W_E_pos (abs model)", wep)
check("tokens_to_residual_directions('b')", lambda: model.tokens_to_residual_directions("b").shape)
def la():
    _, cache = model.run_with_cache(tokens)
    return cache.logit_attrs(cache.decompose_resid(pos_slice=-1), tokens="b", pos_slice=-1).shape
check("cache.logit_attrs(tokens='b')", la)
def sw(setter, key):
    def f():
        getattr(model, setter)(True)
        try:
            _, cache = model.run_with_cache(tokens)
            return key in cache.cache_dict
        finally:
            getattr(model, setter)(False)
    return f
check("set_use_attn_result -> cache['result', l]", sw("set_use_attn_result", "blocks.0.attn.hook_result"))
check("set_use_split_qkv_input", sw("set_use_split_qkv_input", "blocks.0.hook_q_input"))
check("set_use_hook_mlp_in", sw("set_use_hook_mlp_in", "blocks.0.hook_mlp_in"))
check("unembed.hook_in/hook_out", lambda: {"unembed.hook_in", "unembed.hook_out"} <= set(model.run_with_cache(tokens)[1].keys()))
check("loss_fn", lambda: model.loss_fn(model(tokens), tokens).shape == ())
check("get_token_position", lambda: model.get_token_position("c", tokens) == 3)
import copy
def sd_form(step):
    def f():
        m = copy.deepcopy(model)
        out = getattr(m, step)(m.state_dict())
        return isinstance(out, dict)
    return f
for step in ("fold_layer_norm", "center_writing_weights", "center_unembed"):
    check(f"{step}(state_dict) returns the dict", sd_form(step))
def lap():
    m = copy.deepcopy(model); m.load_and_process_state_dict(m.state_dict()); return True
check("load_and_process_state_dict", lap)
def lnpre():
    m = copy.deepcopy(model); m.process_weights_(); return m.cfg.normalization_type == "LNPre"
check("process_weights_ -> LNPre", lnpre)
bad = [n for n, ok in results if not ok]
print(f"{len(results) - len(bad)}/{len(results)} calls work; failing: {bad}")
