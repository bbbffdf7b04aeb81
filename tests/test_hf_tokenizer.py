"""Issue 34 item 2: each task's tokenizer as a real Hugging Face ``PreTrainedTokenizerFast`` (``to_hf()``, what
``model.tokenizer`` holds), with every current id unchanged: shipped models and pinned ids depend on them.

Hugging Face behaviour is checked through the library's own API (callable, padding, ``batch_decode``, special
tokens, ``save_pretrained`` / ``AutoTokenizer.from_pretrained``), so these tests say what a researcher gets.
"""
import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tasks.cfg import CFGTask
from tasks.igsm import IGSMTask
from tasks.igsm.tokenizer import get_tokenizer


@pytest.fixture(scope="module")
def igsm():
    task = IGSMTask("tiny")
    return task.tokenizer, task.tokenizer.to_hf(), task.sample(6, seed=3)


@pytest.mark.parametrize("grammar", ["demo", "cfg3f"])
def test_cfg_hf_tokenizer_keeps_every_id_and_the_text_form(grammar):
    task = CFGTask(grammar)
    hf = task.tokenizer.to_hf()
    assert isinstance(hf, PreTrainedTokenizerBase)
    assert hf.get_vocab() == {w: i for i, w in enumerate(task.tokenizer.names)}
    assert len(hf) == hf.vocab_size == task.d_vocab
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id, hf.mask_token_id) == (0, 1, 2, 3)
    assert (hf.pad_token, hf.bos_token, hf.eos_token) == ("<pad>", "<bos>", "<eos>")
    for row in task.sample(8, seed=1).tokens.tolist():
        text = task.tokenizer.to_text(row)
        assert hf(text)["input_ids"] == row  # special tokens included, nothing added
        assert hf.decode(row) == text


def test_igsm_hf_tokenizer_keeps_every_id_and_round_trips_the_task_text(igsm):
    tok, hf, batch = igsm
    assert hf.get_vocab() == {w: i for i, w in enumerate(tok.vocab)}
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (tok.pad, tok.bos, tok.eos)
    for s in batch.samples:
        assert hf(s.text)["input_ids"] == tok.encode(s.text) == list(s.ids)
        assert hf.decode(s.ids) == tok.decode(s.ids) == s.text
    text = "Define Sainsbury's's Milk as x; so x = 3 + 4 = 7. Shop 'n Save?"
    full = get_tokenizer(23).to_hf()
    assert full.encode(text) == get_tokenizer(23).encode(text)
    assert full.decode(full.encode(text)) == text


def test_the_hugging_face_surface_comes_from_the_library():
    hf = CFGTask("demo").tokenizer.to_hf()
    batch = hf(["a b c", "a"], return_tensors="pt", padding=True)
    assert batch["input_ids"].tolist() == [[4, 5, 6], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    hf.padding_side = "left"
    assert hf(["a b c", "a"], padding=True)["input_ids"] == [[4, 5, 6], [0, 0, 4]]
    assert hf.batch_decode([[1, 4, 2], [5]]) == ["<bos> a <eos>", "b"]
    assert hf.batch_decode([[1, 4, 2]], skip_special_tokens=True) == ["a"]
    assert hf.convert_ids_to_tokens([1, 4]) == ["<bos>", "a"]
    assert hf.convert_tokens_to_ids(["c", "<eos>"]) == [6, 2]
    assert hf.tokenize("a c") == ["a", "c"]
    with pytest.raises(Exception):  # no unknown token: an unknown word is an error, never a silent id
        hf("a zz")


def test_save_pretrained_and_auto_tokenizer_round_trip(tmp_path, igsm):
    tok, hf, batch = igsm
    hf.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)  # offline: a local directory
    s = batch.samples[0]
    assert loaded(s.text)["input_ids"] == list(s.ids)
    assert loaded.decode(s.ids) == s.text
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (tok.bos, tok.eos, tok.pad)


def test_model_text_methods_read_the_hf_tokenizer_and_name_unknown_words():
    from plm_interp import HookedPLM, preset_config

    task = IGSMTask("tiny")
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=32, seed=0, task=task.spec()))
    text = "Define the number of a's b as"
    assert model.to_tokens(text)[0].tolist() == model.tokenizer(text)["input_ids"]
    assert model.to_str_tokens(text) == model.tokenizer.tokenize(text)
    assert model.to_single_str_token(task.tokenizer.bos) == "<BOS>"
    with pytest.raises(ValueError, match="'Zyzzyva'"):
        model.to_tokens("Define Zyzzyva")
    assert torch.equal(model.to_tokens(text, prepend_bos=True)[0, :1], torch.tensor([task.tokenizer.bos]))
