"""Fast tier for the Part 2 (iGSM) analyses: probe sanity, shapes on a tiny random model, bad input."""
from __future__ import annotations

import random

import pytest
import torch

import analyses
from analyses._igsm_common import Decoder, greedy_generate, sentence_spans
from analyses.regret_probe import regret_examples
from analyses.retry_upon_regret import beam_decode, perfect_detector
from analyses.v_probe import PROBES, VExamples, fit_v_probe, probe_examples, score
from plm_interp import HookedPLM
from plm_interp.config import preset_config
from tasks.igsm import IGSMTask, encode, prompt_ids, true_labels

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def task():
    return IGSMTask("small")


@pytest.fixture(scope="module")
def model(task):
    return HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=256, positional="rot",
                                   task=task.spec())).eval()


def _toy_examples(n: int, seed: int, shuffle: bool = False) -> VExamples:
    """Random prefixes; the label is whether token 1 of the prefix is 20 (vs 21)."""
    rng = random.Random(seed)
    pre, lab = [], []
    for _ in range(n):
        y = rng.randrange(2)
        pre.append([1, 20 + y] + [rng.randrange(30, 60) for _ in range(rng.randrange(3, 8))])
        lab.append(y)
    if shuffle:
        rng.shuffle(lab)
    return VExamples(pre, [[6, 40, 8] for _ in pre], torch.tensor(lab))


def _write_label_hook(model, strength: float = 30.0):
    """Makes the label linearly readable at the last layer by construction: a hook adds +-strength on dim 0
    at every position, the sign given by token 1 of the current input."""
    seen = {}
    orig = model.forward

    def forward(tokens, *a, **k):
        seen["t"] = tokens
        return orig(tokens, *a, **k)

    def write(resid, hook):
        sign = (seen["t"][:, 1] == 21).float() * 2 - 1
        resid = resid.clone()
        resid[..., 0] += strength * sign[:, None]
        return resid

    model.forward = forward
    model.add_hook(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", write)
    return lambda: (model.reset_hooks(), model.__dict__.pop("forward"))


def test_probe_reads_a_label_written_into_the_residual(model):
    undo = _write_label_hook(model)
    try:
        train, test = _toy_examples(128, 0), _toy_examples(64, 1)
        vp = fit_v_probe(model, train, model.cfg.n_layers, 2, steps=60, lr=1e-2, batch_size=32)
        acc = score(vp.predict(model, test), test.labels, train.labels)["acc"]
        assert acc > 0.95
        # shuffled labels: nothing to learn, chance on held-out data
        shuf = _toy_examples(128, 0, shuffle=True)
        vp = fit_v_probe(model, shuf, model.cfg.n_layers, 2, steps=60, lr=1e-2, batch_size=32)
        acc_shuf = score(vp.predict(model, test), test.labels, shuf.labels)["acc"]
        assert acc_shuf < 0.75
    finally:
        undo()


def test_v_probe_leaves_the_model_frozen(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit_v_probe(model, _toy_examples(16, 0), 1, 2, steps=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    assert not model.hook_embed._forward_hooks  # the embedding hook is removed after training


def test_embedding_update_touches_appended_tokens_only(model):
    ex = _toy_examples(4, 0)
    vp = fit_v_probe(model, ex, 1, 2, steps=1)
    with torch.no_grad():
        vp.U.normal_()
        tokens, end, appended = ex.batch(range(4))
        captured = {}

        def grab(x, hook):
            captured["x"] = x

        model.add_hook("blocks.0.hook_resid_pre", grab)
        try:
            vp.states(model, tokens, end, appended)
        finally:
            model.reset_hooks()
        assert model.hook_embed._forward_hooks == {}
        plain = model(tokens, stop_at_layer=0)
    assert torch.allclose(captured["x"][~appended], plain[~appended])
    assert not torch.allclose(captured["x"][appended], plain[appended])


@pytest.mark.parametrize("probe", PROBES)
def test_probe_examples_match_true_labels(task, probe):
    problems = [s.problem for s in task.sample(6, seed=3).samples]
    ex = probe_examples(task, problems, probe, per_problem=3, seed=0)
    assert len(ex) == 18
    for pre, suf in zip(ex.prefixes, ex.suffixes):
        assert suf[0] == task.tokenizer.start and suf[-1] == task.tokenizer.end
        assert (task.tokenizer.mid in suf) == (probe == "dep")
    if probe == "nece":  # the prefix ends at the question's "?"
        assert all(task.tokenizer.vocab[p[-1]] == "?" for p in ex.prefixes)
    n_cls = task.config.modulus if probe == "value" else 2
    assert int(ex.labels.max()) < n_cls


def test_v_probe_result_shapes(model):
    r = analyses.v_probe(model, probe="can_next", layer="all", n_train=8, n_test=4, per_problem=2, steps=3,
                         progress=False)
    assert r.layers == [0, 1, 2]
    assert len(r.records) == 6 and {x["model"] for x in r.records} == {"trained", "random-init"}
    for rec in r.records:
        assert 0 <= rec["acc"] <= 1 and 0 <= rec["majority"] <= 1 and rec["n"] == 8
    assert "majority" in r.table()
    assert r.to_dict()["probe"] == "can_next"


def test_v_probe_bad_input(model, task):
    with pytest.raises(ValueError, match="probe"):
        analyses.v_probe(model, probe="nope")
    with pytest.raises(ValueError, match="layer"):
        analyses.v_probe(model, probe="nece", layer=7)
    with pytest.raises(ValueError, match="rank"):
        analyses.v_probe(model, probe="nece", rank=0)
    small = HookedPLM(preset_config("tiny", d_vocab=8, n_ctx=256, positional="rot")).eval()
    with pytest.raises(ValueError, match="d_vocab|vocabulary"):
        analyses.v_probe(small, task, probe="nece")
    with pytest.raises(ValueError, match="task"):
        analyses.v_probe(small, probe="nece")  # no task recorded and none given
    from tasks.cfg import CFGTask

    with pytest.raises(ValueError, match="igsm"):
        analyses.v_probe(model, CFGTask("cfg3f"), probe="nece")


def test_decoder_rollback_restores_greedy_path(model, task):
    p = task.sample(1, seed=5).samples[0].problem
    d = Decoder(model, prompt_ids(p, task.tokenizer))
    start = d.mark()
    first = d.sample_until({task.tokenizer.ids["."]}, 0.0, None, 12)
    d.sample_until(set(), 1.0, torch.Generator().manual_seed(0), 5)
    d.rollback(start)
    assert d.sample_until({task.tokenizer.ids["."]}, 0.0, None, 12) == first


def test_perfect_detector_on_true_and_wrong_sentences(task):
    tok = task.tokenizer
    fires = perfect_detector(task)
    define, as_ = tok.ids["Define"], tok.ids["as"]
    for s in task.sample(8, seed=2).samples:
        p, lb = s.problem, true_labels(s.problem, tok)
        ids = encode(p, tok).ids
        st = p.structure
        for t in range(len(lb.pos_steps) - 1):
            head = ids[: lb.pos_steps[t] + 1] + [define]
            nxt = p.steps[t].param
            assert not fires(p, head + tok.encode(st.param_name(nxt)) + [as_], None)
            bad = [a for i, a in enumerate(lb.params) if not lb.can_next[t, i]]
            if bad:
                assert fires(p, head + tok.encode(st.param_name(bad[0])) + [as_], None)


def test_regret_examples_are_balanced_and_end_at_as(task):
    seqs, pos, y = regret_examples(task, [s.problem for s in task.sample(20, seed=1).samples], 4)
    assert len(seqs) == 80 and 0.3 < float(y.float().mean()) < 0.7
    assert all(task.tokenizer.vocab[s[q]] == "as" for s, q in zip(seqs, pos))


def test_beam_width_one_is_greedy(model, task):
    p = task.sample(1, seed=4).samples[0].problem
    prompt = prompt_ids(p, task.tokenizer)
    g = greedy_generate(model, [p], task.tokenizer, 10)[0]
    b = beam_decode(model, prompt, task.tokenizer.eos, width=1, max_new_tokens=10)
    assert b[: len(g)] == g[: len(b)]


def test_sentence_spans(task):
    s = task.sample(1, seed=0).samples[0]
    spans = sentence_spans(task.tokenizer, s.ids)
    assert [b for _, b in spans] == s.encoded.sentence_ends


def test_generation_analyses_run_on_a_tiny_model(model):
    r = analyses.reasoning_level(model, n=2, max_new_tokens=12, progress=False)
    assert {x["set"] for x in r.records} == {"in", "reask"} and all(0 <= x["acc"] <= 1 for x in r.records)
    assert all(sum(x["first_errors"].values()) == round(x["n"] * (1 - x["acc"])) for x in r.records)
    assert "| first_errors |" in r.table()
    r = analyses.retry_eval(model, n=1, max_new_tokens=8, progress=False)
    assert any(x["set"] == "op=6" for x in r.records)
    r = analyses.retry_upon_regret(model, n=2, beam=2, max_new_tokens=12, n_probe_train=6, progress=False)
    assert {x["method"] for x in r.records} == {"greedy", "beam2", "retry(probe)", "retry(perfect)"}
    r = analyses.regret_probe(model, n_train=6, n_test=4, n_gen=1, max_new_tokens=12, controls=False, progress=False)
    assert len(r.records) == 1 and 0 <= r.records[0]["acc"] <= 1
    r = analyses.mistakes(model, n=1, n_train=4, steps=2, max_new_tokens=12, progress=False)
    assert r.records[-1]["error_kind"] == "all"
    for name in ("v_probe", "reasoning_level", "mistakes", "regret_probe", "retry_upon_regret", "retry_eval"):
        assert name in analyses.names()


def test_generation_analyses_bad_input(model):
    with pytest.raises(ValueError, match="sets"):
        analyses.reasoning_level(model, sets=("nope",))
    with pytest.raises(ValueError, match="'n'"):
        analyses.retry_eval(model, n=0)
    with pytest.raises(ValueError, match="detector"):
        analyses.retry_upon_regret(model, detector=3)
    with pytest.raises(ValueError, match="beam"):
        analyses.retry_upon_regret(model, beam=-1)
    with pytest.raises(ValueError, match="layer"):
        analyses.regret_probe(model, layer=9)


def test_tally_counts_first_error_kinds_per_op():
    """Hand-made wrong solutions: a reused letter and an unknown parameter are told apart in ``first_errors``."""
    import re

    from analyses._igsm_common import tally_by_op
    from tasks.igsm import verify

    t = IGSMTask("tiny")
    s = next(x for x in t.sample(20, seed=5, op=2, split="test").samples if x.text.count("Define") >= 2)
    sol = s.text.split("<SOL>")[1].strip()  # the solution, "<ANS> v <EOS>" included
    first, second = re.findall(r"as (\w);", sol)[:2]
    head, tail = sol.split(". Define", 1)
    reused = head + ". Define" + re.sub(rf"\b{second}\b", first, tail)  # the second sentence reuses the first letter
    unknown = sol.replace(sol.split(" as ")[0], "Define Nowhere 's Nothing", 1)
    reps = [verify(s.problem, w) for w in (sol, reused, unknown)]
    assert [r.error_kind for r in reps] == [None, "letter_reused", "unknown_param"]
    row = tally_by_op([s.problem] * 3, reps)[2].row()
    assert row["acc"] == 1 / 3 and row["first_errors"] == {"letter_reused": 1, "unknown_param": 1}


def test_v_probe_and_regret_probe_are_reproducible(model):
    """Two identical calls give identical figures, whatever the global RNG did in between."""
    kw = dict(n_train=4, n_test=2, per_problem=2, steps=3, progress=False)
    first = analyses.v_probe(model, probe="nece", **kw).records
    torch.randn(7)
    assert analyses.v_probe(model, probe="nece", **kw).records == first
    kw = dict(n_train=6, n_test=4, n_gen=1, max_new_tokens=12, controls=False, progress=False)
    first = analyses.regret_probe(model, **kw).to_dict()["records"]  # NaN -> None, so equal runs compare equal
    torch.randn(7)
    assert analyses.regret_probe(model, **kw).to_dict()["records"] == first
