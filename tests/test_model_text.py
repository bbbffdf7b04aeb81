"""The task tokenizer on the model (issue 19 item 2): text in, text out, TransformerLens' test_prompt, and the
core library never importing ``tasks`` at import time (issue 15's layer rule)."""
import contextlib
import io
import subprocess
import sys

import pytest
import torch
from transformer_lens.utilities import test_prompt as tl_test_prompt

from plm_interp import HookedPLM, preset_config
from tasks.cfg import CFGTask
from tasks.igsm import IGSMTask


@pytest.fixture(scope="module")
def cfg_model():
    task = CFGTask("demo")
    return HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=32, seed=0, task=task.spec()))


@pytest.fixture(scope="module")
def igsm_model():
    task = IGSMTask("tiny")
    return HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=32, seed=0, task=task.spec()))


def test_cfg_text_round_trips_through_the_task_tokenizer(cfg_model):
    names = CFGTask("demo").tokenizer.names  # ['<pad>', '<bos>', '<eos>', '<mask>', 'a', 'b', 'c']
    tokens = cfg_model.to_tokens("a c b", prepend_bos=True)
    assert tokens.tolist() == [[names.index("<bos>"), names.index("a"), names.index("c"), names.index("b")]]
    assert cfg_model.to_tokens("a c b").tolist() == [tokens[0, 1:].tolist()]  # default: no BOS (TL's cfg flag)
    assert cfg_model.to_string(tokens[0]) == "<bos> a c b"
    assert cfg_model.to_string(tokens) == ["<bos> a c b"]
    assert cfg_model.to_str_tokens(tokens) == ["<bos>", "a", "c", "b"]
    assert cfg_model.to_str_tokens(["a b", "c"]) == [["a", "b"], ["c"]]
    assert cfg_model.to_single_token("c") == names.index("c") and cfg_model.to_single_token(5) == 5
    with pytest.raises(ValueError, match="2 tokens"):
        cfg_model.to_single_token("a b")
    with pytest.raises(ValueError, match="'z'"):
        cfg_model.to_tokens("a z")
    padded = cfg_model.to_tokens(["a b c", "a"], padding_side="left")
    assert padded.tolist() == [[4, 5, 6], [0, 0, 4]]
    # the forward pass reads the same text
    torch.testing.assert_close(cfg_model("a c b"), cfg_model(tokens[:, 1:]))


def test_igsm_text_uses_the_task_word_splitter(igsm_model):
    vocab = IGSMTask("tiny").tokenizer.vocab
    text = "Define the number of a's b as"
    words = ["Define", "the", "number", "of", "a", "'s", "b", "as"]
    assert igsm_model.to_str_tokens(text) == words
    assert igsm_model.to_tokens(text)[0].tolist() == [vocab.index(w) for w in words]
    assert igsm_model.to_string(igsm_model.to_tokens(text)[0]) == text
    out = igsm_model.generate(text, max_new_tokens=3, do_sample=False)
    assert isinstance(out, str) and out.startswith(text)


def test_transformer_lens_test_prompt_ranks_the_answer(cfg_model):
    logits = cfg_model(cfg_model.to_tokens("a b a b"))[0]
    probs = logits[-1].softmax(-1)
    answer = cfg_model.to_single_token("c")
    expected_rank = int((probs > probs[answer]).sum())  # brute force: tokens more likely than the answer
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tl_test_prompt("a b a b", "c", cfg_model, prepend_space_to_answer=False, top_k=5)
    assert f"('c', {expected_rank})" in buffer.getvalue()


def test_a_model_without_task_says_how_to_attach_a_tokenizer(tokens):
    model = HookedPLM(preset_config("tiny", d_vocab=7, n_ctx=16))
    with pytest.raises(ValueError, match="tokenizer"):
        model.to_tokens("a b")
    model.tokenizer = CFGTask("demo").tokenizer  # a caller may attach one
    assert model.to_str_tokens("a b") == ["a", "b"]


def test_the_core_library_does_not_import_tasks_at_import_time():
    code = ("import sys; import plm_interp, plm_interp.model, plm_interp.generation; "
            "print(sorted(m for m in sys.modules if m == 'tasks' or m.startswith(('tasks.', 'analyses'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
