"""Fast tier for the Part 2 (iGSM) analyses: probe sanity, shapes on a tiny random model, bad input."""
from __future__ import annotations

import random

import pytest
import torch

import analyses
from analyses.shared.decoding import Decoder, greedy_generate
from analyses.shared.igsm_text import sentence_spans
from analyses.regret_probe import first_mistakes
from analyses.retry_upon_regret import beam_decode, paired_diff, perfect_detector, retry_decode
from analyses.shared.v_queries import PROBES, probe_examples, regret_examples
from plm_interp.probes import VExamples, VFit, fit_v_probe, score
from tasks.igsm import labels_along
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
        fit = VFit(max_steps=60, lr=1e-2, batch_size=32, check_every=5)
        vp = fit_v_probe(model, train, model.cfg.n_layers, 2, fit=fit)
        acc = score(vp.predict(model, test), test.labels, train.labels)["acc"]
        assert acc > 0.95
        # the planted label is linearly readable at once: the validation figure is flat from the first check, so
        # the figure rule stops after its patience, not at the ceiling
        assert vp.fit_info["converged"] and vp.fit_info["steps"] < 60 and vp.fit_info["train_acc"] == 1.0
        assert vp.fit_info["val_acc"] == 1.0 and vp.fit_info["stop_reason"].startswith("validation accuracy")
        # shuffled labels: nothing to learn, chance on held-out data
        shuf = _toy_examples(128, 0, shuffle=True)
        vp = fit_v_probe(model, shuf, model.cfg.n_layers, 2, fit=fit)
        acc_shuf = score(vp.predict(model, test), test.labels, shuf.labels)["acc"]
        assert acc_shuf < 0.75
    finally:
        undo()


def test_v_probe_leaves_the_model_frozen(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit_v_probe(model, _toy_examples(16, 0), 1, 2, fit=VFit(max_steps=3))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    assert not model.hook_embed._forward_hooks  # the embedding hook is removed after training


@pytest.mark.parametrize("update", ["all", "appended"])
def test_embedding_update_touches_every_token_or_appended_only(model, update):
    """The paper's update is on the input embedding layer (every token); the option leaves the prefix exact."""
    ex = _toy_examples(4, 0)
    vp = fit_v_probe(model, ex, 1, 2, fit=VFit(max_steps=1), update=update)
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
        expect = plain + (vp.U[tokens] @ vp.V) * (appended[..., None] if update == "appended" else 1)
    assert torch.allclose(captured["x"], expect, atol=1e-5)
    assert torch.allclose(captured["x"][~appended], plain[~appended]) == (update == "appended")


def test_score_balanced_accuracy_is_the_mean_of_per_label_accuracies():
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    pred = torch.tensor([0, 0, 0, 0, 0, 1, 1, 0])
    s = score(pred, labels, train_labels=torch.tensor([0, 0, 1]))
    assert s["acc"] == 6 / 8 and s["majority"] == 6 / 8 and s["majority_label"] == 0
    assert s["by_label"] == pytest.approx({0: 5 / 6, 1: 1 / 2}) and s["balanced_acc"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert s["n_by_label"] == {0: 6, 1: 2}


def test_uniform_queries_follow_the_label_frequencies(task):
    """Default queries are uniform over (position, A): the label mean equals the problems' own can_next rate."""
    problems = [s.problem for s in task.sample(40, seed=9).samples]
    ex = probe_examples(task, problems, "can_next", per_problem=50, seed=0)
    rate = sum(float(true_labels(p, task.tokenizer).can_next.mean()) for p in problems) / len(problems)
    assert float(ex.labels.float().mean()) == pytest.approx(rate, abs=0.03)
    bal = probe_examples(task, problems, "can_next", per_problem=50, seed=0, balanced=True)
    assert float(bal.labels.float().mean()) == pytest.approx(0.5, abs=0.03) and rate < 0.4   # lopsided, so the two differ


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
    r = analyses.v_probe(model, probe="can_next", layer="all", n_train=8, n_test=4, per_problem=2,
                         fit={"max_steps": 3}, progress=False)
    assert r.layers == [0, 1, 2]
    assert len(r.records) == 6 and {x["model"] for x in r.records} == {"trained", "random-init"}
    for rec in r.records:  # acc is the label-weighted mean of the per-label accuracies, on 4 problems x 2 queries
        assert rec["n"] == 8 and sum(rec["n_by_label"].values()) == 8
        assert rec["acc"] == pytest.approx(sum(rec["by_label"][y] * rec["n_by_label"][y] for y in rec["by_label"]) / 8)
        assert rec["steps"] <= 3 and "train_acc" in rec
    heads = r.headlines()
    assert heads[0]["control"] == r.accuracy(model="random-init") and heads[0]["majority"] == r.record()["majority"]
    assert "| verdict |" in r.table() and "balanced acc" in r.table()
    assert r.to_dict()["probe"] == "can_next"


def test_v_probe_bad_input(model, task):
    with pytest.raises(ValueError, match="probe"):
        analyses.v_probe(model, probe="nope")
    with pytest.raises(ValueError, match="layer"):
        analyses.v_probe(model, probe="nece", layer=7)
    with pytest.raises(ValueError, match="rank"):
        analyses.v_probe(model, probe="nece", rank=0)
    with pytest.raises(ValueError, match="layers = True"):
        analyses.v_probe(model, probe="nece", layer=True)
    with pytest.raises(ValueError, match="'max_steps' = 0"):
        analyses.v_probe(model, probe="nece", fit={"max_steps": 0})
    with pytest.raises(ValueError, match="unknown key"):
        analyses.v_probe(model, probe="nece", fit={"steps": 10})
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
            assert not fires(p, head + tok.encode(st.param_name(nxt)) + [as_], len(head) - 1)
            bad = [a for i, a in enumerate(lb.params) if not lb.can_next[t, i]]
            if bad:
                assert fires(p, head + tok.encode(st.param_name(bad[0])) + [as_], len(head) - 1)


def test_regret_examples_are_can_next_queries_after_define_as(task):
    """The regret probe's inputs: prefix = true solution up to a sentence end, suffix = "Define A as", label =
    can_next there (checked against the verifier-based labels of the prefix, an independent computation)."""
    tok = task.tokenizer
    problems = [s.problem for s in task.sample(20, seed=1).samples]
    ex = regret_examples(task, problems, 4)
    assert len(ex) == 80
    names = [{tuple(tok.encode(p.structure.param_name(a))): a for a in p.graph.topo} for p in problems]
    for k, (pre, suf, y) in enumerate(zip(ex.prefixes, ex.suffixes, ex.labels.tolist())):
        p = problems[k // 4]
        assert tok.vocab[suf[0]] == "Define" and tok.vocab[suf[-1]] == "as"
        lb = labels_along(p, tok, pre)  # rows up to the prefix's last accepted sentence
        a = names[k // 4][tuple(suf[1:-1])]
        assert y == int(lb.can_next[-1, lb.params.index(a)])
    bal = regret_examples(task, problems, 4, balanced=True)
    assert float(bal.labels.float().mean()) == pytest.approx(0.5, abs=0.15)
    assert float(bal.labels.float().mean()) > float(ex.labels.float().mean())


def test_first_mistakes_point_at_the_wrong_sentence(task):
    """A hand-made solution whose second sentence defines a parameter that is not ready: the mistake item ends
    at that sentence's "as", the correct first sentence is a no-alarm item."""
    tok = task.tokenizer
    s = next(x for x in task.sample(40, seed=3).samples if len(x.problem.steps) >= 3)
    p, lb = s.problem, true_labels(s.problem, tok)
    ids = encode(p, tok).ids
    bad = next(a for i, a in enumerate(lb.params) if not lb.can_next[1, i] and not lb.known[1, i])
    cut = lb.pos_steps[1] + 1
    orig_as = ids.index(tok.ids["as"], cut)  # replace "Define <the right name> as" of sentence 2
    x = ids[:cut] + [tok.ids["Define"]] + tok.encode(p.structure.param_name(bad)) + ids[orig_as:]
    wrong, right = first_mistakes(None, task, [p], [x])
    assert [w[2] for w in wrong] == ["not_ready"]
    assert wrong[0][0] == x[: cut + 2 + len(tok.encode(p.structure.param_name(bad)))] and wrong[0][1] == cut
    assert len(right) == 1 and right[0][1] == lb.pos_steps[0] + 1 and tok.vocab[right[0][0][-1]] == "as"


def test_beam_width_one_is_greedy(model, task):
    """Width 1 is greedy over the whole continuation (not only a shared prefix)."""
    for seed in (4, 5, 6):
        p = task.sample(1, seed=seed).samples[0].problem
        prompt = prompt_ids(p, task.tokenizer)
        g = greedy_generate(model, [p], task.tokenizer, 40)[0]
        assert beam_decode(model, prompt, task.tokenizer.eos, width=1, max_new_tokens=40) == g


def test_beam_finds_the_better_sequence_greedy_misses():
    """A planted 2-step model: greedy takes token 1 (p=.6) then faces a flat distribution; token 2 (p=.4) leads
    to a certain EOS. Beam search with width 2 must return [2, EOS]; width 1 must return greedy's [1, ...]."""
    from analyses.retry_upon_regret import beam_search
    from plm_interp.model import KVCache

    V, EOS = 6, 5

    class Planted:
        cfg = type("C", (), {"n_layers": 1})()

        def __call__(self, toks, past_kv_cache=None):
            last = toks[:, -1].tolist()
            out = torch.full((len(last), 1, V), -1e9)
            for b, t in enumerate(last):
                if t == 1:
                    out[b, 0, :] = 0.0                   # flat: every next token 1/6
                else:
                    out[b, 0, EOS] = 0.0                 # after 2: EOS for sure
            return out

    logits0 = torch.log(torch.tensor([[1e-9, 0.6, 0.4, 1e-9, 1e-9, 1e-9]]))
    cache = KVCache([])
    assert beam_search(Planted(), cache, logits0, 2, {EOS}, 2) == [2, EOS]
    assert beam_search(Planted(), cache, logits0, 1, {EOS}, 2)[0] == 1


def test_rollback_restores_the_exact_prefix_and_cache(model, task):
    """A detector that fires on its first 3 calls with greedy re-sampling (temperature 0): every rollback must
    restore the exact ids, logits and KV cache, so the solution equals plain greedy token for token, with 3
    retries; the detector always sees the same sentence start after a rollback."""
    tok = task.tokenizer
    for seed in (0, 1):
        p = task.sample(1, seed=seed).samples[0].problem
        calls = []

        def fires(problem, ids, start):
            calls.append((list(ids[:start]), start))
            return len(calls) <= 3

        ids, retries = retry_decode(model, p, tok, fires, max_retries=10, retry_temperature=0.0, max_new_tokens=40)
        g = greedy_generate(model, [p], tok, 40)[0]
        if len(calls) >= 4:
            assert retries == 3 and ids == g
            assert calls[0] == calls[1] == calls[2] == calls[3]  # same prefix each time
        else:
            assert ids == g


def test_a_detector_firing_exactly_on_not_ready_parameters_is_the_perfect_detector(model, task):
    """Planted ground truth: a detector written from the verifier-based labels (``labels_along``: A must be
    not yet known and have every parent known) fires exactly where the perfect detector does, so retry accuracy
    with it equals the perfect-detector figure, problem by problem."""
    tok = task.tokenizer

    def not_ready(problem, ids, start):
        lb = labels_along(problem, tok, ids[:start])
        names = {tuple(tok.encode(problem.structure.param_name(a))): a for a in problem.graph.topo}
        a = names.get(tuple(ids[start + 1 : -1]))
        return a is None or not bool(lb.can_next[-1, lb.params.index(a)])

    r = analyses.retry_upon_regret(model, detector=not_ready, perfect=(10,), beam=0, n=3, sets=(f"op={task.config.op_max}",),
                                   max_new_tokens=60, progress=False)
    rows = {x["method"]: x for x in r.records if x["op"] == "all"}
    assert rows["retry(custom)"]["acc"] == rows["retry(perfect)"]["acc"]
    assert rows["retry(custom)"]["retries"] == rows["retry(perfect)"]["retries"]


def test_paired_difference_and_its_interval():
    a = [True] * 10 + [False] * 10
    b = [True] * 8 + [False] * 12
    m, lo, hi = paired_diff(a, b)   # two problems flip to correct: mean 0.1, sd of the 0/1 differences
    sd = (2 * 0.9**2 + 18 * 0.1**2) ** 0.5 / 19**0.5
    assert m == pytest.approx(0.1) and hi - m == pytest.approx(1.959963984540054 * sd / 20**0.5)
    assert paired_diff(a, a) == (0.0, 0.0, 0.0)


def test_sentence_spans(task):
    s = task.sample(1, seed=0).samples[0]
    spans = sentence_spans(task.tokenizer, s.ids)
    assert [b for _, b in spans] == s.encoded.sentence_ends


def model_task(model):
    import tasks

    return tasks.from_spec(model.cfg.task)


def test_generation_analyses_run_on_a_tiny_model(model):
    r = analyses.reasoning_level(model, n=2, max_new_tokens=12, progress=False)
    assert {x["set"] for x in r.records} == {"in", "reask"}
    assert all(sum(x["first_errors"].values()) == round(x["n"] * (1 - x["acc"])) for x in r.records)
    assert "| first_errors |" in r.table()
    r = analyses.retry_eval(model, n=1, max_new_tokens=8, progress=False)
    assert any(x["set"] == "op=6" for x in r.records)
    r = analyses.retry_upon_regret(model, n=2, beam=2, max_new_tokens=12, n_probe_train=6, perfect=(10, 0),
                                   progress=False)
    assert {x["method"] for x in r.records} == {"greedy", "beam2", "retry(probe)", "retry(perfect)", "retry(perfect0)",
                                                "retry(probe)+beam2", "retry(perfect)+beam2", "retry(perfect0)+beam2"}
    t = model_task(model)  # op_max and the OOD ops, by default
    assert {x["set"] for x in r.records} == {f"op={k}" for k in (t.config.op_max, *t.ood_ops())}
    for x in r.records:  # no retry allowed: the perfect detector changes nothing, beam-1 base is greedy
        if x["method"] == "retry(perfect0)":
            g = next(y for y in r.records if (y["set"], y["op"], y["method"]) == (x["set"], x["op"], "greedy"))
            assert x["acc"] == g["acc"] and x["retries"] == 0 and x["vs_greedy"] == 0
    r = analyses.regret_probe(model, n_train=6, n_test=4, n_gen=1, max_new_tokens=12, fit={"max_steps": 3},
                              controls=False, progress=False)
    rec = r.records[0]
    assert len(r.records) == 1 and rec["n"] == 16
    assert rec["acc"] == pytest.approx(sum(rec["by_label"][y] * rec["n_by_label"][y] for y in rec["by_label"]) / 16)
    r = analyses.mistakes(model, n=1, n_train=4, fit={"max_steps": 2}, max_new_tokens=12, progress=False)
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

    from analyses.shared.tally import tally_by_op
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
    kw = dict(n_train=4, n_test=2, per_problem=2, fit={"max_steps": 3}, progress=False)
    first = analyses.v_probe(model, probe="nece", **kw).records
    torch.randn(7)
    assert analyses.v_probe(model, probe="nece", **kw).records == first
    kw = dict(n_train=6, n_test=4, n_gen=1, max_new_tokens=12, fit={"max_steps": 3}, controls=False, progress=False)
    first = analyses.regret_probe(model, **kw).to_dict()["records"]  # NaN -> None, so equal runs compare equal
    torch.randn(7)
    assert analyses.regret_probe(model, **kw).to_dict()["records"] == first


def test_wilson_interval_matches_scipy_and_verdicts_read_the_interval():
    """The 95% Wilson interval against scipy's; the verdict says "beats" only when the control (or majority) is
    below the whole interval, "BELOW" when above it, and "does NOT beat" when inside it."""
    from scipy.stats import binomtest

    from analyses.result import headline, headline_table, wilson

    for k, n in ((0, 10), (7, 10), (300, 512), (512, 512)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    h = headline("x acc", 0.70, 512, control=0.60, majority=0.77)   # CI ~[0.659, 0.738]
    assert h["verdict"] == "beats the random-init control; BELOW the majority guess"
    h = headline("x acc", 0.70, 512, control=0.69, majority=0.5)
    assert h["verdict"].startswith("does NOT beat the random-init control") and "beats the majority" in h["verdict"]
    # detection: judged on catch minus false-alarm rate, so a control that fires everywhere is worth nothing
    h = headline("caught", 0.30, 100, control=0.27, false_alarm=0.45, n_false_alarm=50, control_false_alarm=0.40)
    assert h["verdict"].startswith("catch minus false-alarm rate -15.0 points") and "does NOT beat" in h["verdict"]
    assert "45.0 (40.0)" in headline_table([h])
    h = headline("caught", 0.65, 103, control=0.913, false_alarm=0.113, n_false_alarm=221, control_false_alarm=0.896)
    assert "beats the random-init control's 1.7" in h["verdict"]
    with pytest.raises(ValueError, match="seeds"):
        headline("x", 0.5, 10, seeds=[0.5, 0.6])
