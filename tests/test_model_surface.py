"""HookedTransformer's forward / generate signatures on HookedPLM (issue 19 item 1): every TL argument is
accepted or refused with a message naming it, and each accepted one does what TL's does, checked against an
independent computation (plain loops, brute force)."""
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import tiny_model


def test_loss_per_token_is_the_unreduced_cross_entropy(tokens):
    model = tiny_model("rot")
    logits = model(tokens)
    per_token = model(tokens, return_type="loss", loss_per_token=True)
    expected = torch.stack([F.cross_entropy(logits[b, :-1], tokens[b, 1:], reduction="none")
                            for b in range(tokens.shape[0])])
    assert per_token.shape == (tokens.shape[0], tokens.shape[1] - 1)
    torch.testing.assert_close(per_token, expected)
    torch.testing.assert_close(model(tokens, return_type="loss"), expected.mean())
    both_logits, both_loss = model(tokens, return_type="both")
    torch.testing.assert_close(both_logits, logits)
    torch.testing.assert_close(both_loss, expected.mean())
    assert model(tokens, return_type=None) is None


def test_start_and_stop_at_layer_compose_to_the_full_forward(scheme, tokens):
    model = tiny_model(scheme)
    mid = model(tokens, stop_at_layer=1)
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(mid, cache["blocks.1.hook_resid_pre"])
    torch.testing.assert_close(model(mid, start_at_layer=1), model(tokens))
    loss = model(mid, start_at_layer=1, tokens=tokens, return_type="loss")
    torch.testing.assert_close(loss, model(tokens, return_type="loss"))
    with pytest.raises(ValueError, match="tokens="):
        model(mid, start_at_layer=1, return_type="loss")
    with pytest.raises(ValueError, match="d_model"):
        model(tokens, start_at_layer=1)


@pytest.mark.bad_input
def test_tl_arguments_that_do_not_apply_are_accepted_or_refused_by_name(tokens):
    model = tiny_model("abs")
    logits = model(tokens)
    # prepend_bos / padding_side apply to text only (as in TL); an all-ones attention_mask changes nothing
    torch.testing.assert_close(model(tokens, prepend_bos=True, padding_side="left",
                                     attention_mask=torch.ones_like(tokens)), logits)
    mask = torch.ones_like(tokens)
    mask[0, 0] = 0
    with pytest.raises(ValueError, match="attention_mask"):
        model(tokens, attention_mask=mask)
    with pytest.raises(ValueError, match="shortformer_pos_embed"):
        model(tokens, shortformer_pos_embed=torch.zeros(1))
    with pytest.raises(ValueError, match="return_type"):
        model(tokens, return_type="probs")


def _loop(model, tokens, n, pick):
    for _ in range(n):
        logits = model(tokens)[:, -1]
        tokens = torch.cat([tokens, pick(logits, tokens)[:, None]], 1)
    return tokens


def test_do_sample_false_is_the_greedy_loop_and_return_types(scheme):
    model = tiny_model(scheme)
    prompt = torch.randint(0, 11, (2, 4), generator=torch.Generator().manual_seed(3))
    greedy = _loop(model, prompt, 6, lambda logits, _: logits.argmax(-1))
    assert torch.equal(model.generate(prompt, max_new_tokens=6, do_sample=False, verbose=False), greedy)
    assert torch.equal(model.generate(prompt, max_new_tokens=6, do_sample=False, return_type="tokens"), greedy)


def test_freq_penalty_matches_a_plain_penalised_loop():
    model = tiny_model("rot")
    prompt = torch.randint(0, 11, (3, 3), generator=torch.Generator().manual_seed(4))

    def penalised(logits, seen):
        counts = torch.stack([torch.bincount(row, minlength=logits.shape[-1]) for row in seen]).float()
        return (logits - 2.0 * counts).argmax(-1)

    expected = _loop(model, prompt, 8, penalised)
    got = model.generate(prompt, max_new_tokens=8, do_sample=False, freq_penalty=2.0)
    assert torch.equal(got, expected)
    assert not torch.equal(got, model.generate(prompt, max_new_tokens=8, do_sample=False))


def test_top_p_samples_only_from_the_nucleus():
    model = tiny_model("rot")
    prompt = torch.tensor([[1, 2, 3]])
    probs = model(prompt)[0, -1].softmax(-1).detach()
    order = probs.argsort(descending=True).tolist()
    nucleus, mass = set(), 0.0  # brute force: add tokens by probability until the mass reaches top_p
    for t in order:
        nucleus.add(t)
        mass += float(probs[t])
        if mass >= 0.3:
            break
    rows = model.generate(prompt.expand(400, -1), max_new_tokens=1, top_p=0.3, seed=0)[:, -1]
    assert set(rows.tolist()) == nucleus
    top1 = model.generate(prompt, max_new_tokens=1, top_p=1e-6, seed=1)[:, -1]
    assert int(top1) == order[0]


@pytest.mark.bad_input
@pytest.mark.parametrize("kwargs, word", [(dict(top_p=0.0), "top_p"), (dict(top_k=0), "top_k"),
                                          (dict(freq_penalty=-1.0), "freq_penalty"),
                                          (dict(max_new_tokens=2.5), "max_new_tokens"),
                                          (dict(return_type="logits"), "return_type"),
                                          (dict(temperature=-1), "temperature"),
                                          (dict(stop_strings=["b"]), "stop_strings")])
def test_bad_generate_arguments_are_refused_by_name(kwargs, word):
    """Also arguments HookedPLM does not have (TL 4's ``stop_strings``): a message naming them, no bare TypeError
    (``output_logits``, refused before issue 34, is supported now: tests/test_model_tl_researcher.py)."""
    model = tiny_model("rot")
    with pytest.raises(ValueError, match=word):
        model.generate(torch.tensor([[1, 2]]), **kwargs)


def test_hooked_sae_plm_is_there_with_sae_lens_and_explained_without():
    """sae-lens installs on the TL 3.9 line only: there HookedSAEPLM is a HookedPLM with sae-lens's methods;
    beside TL 4.x asking for it says why it is missing. The module itself imports on both."""
    import importlib.util

    from plm_interp import HookedPLM
    from plm_interp.model import sae

    if importlib.util.find_spec("sae_lens") is None:
        with pytest.raises(ImportError, match="transformer-lens < 4"):
            sae.hooked_sae_plm_class()
    else:
        from sae_lens import HookedSAETransformer

        cls = sae.HookedSAEPLM
        assert issubclass(cls, HookedPLM) and cls.add_sae is HookedSAETransformer.__dict__["add_sae"]
