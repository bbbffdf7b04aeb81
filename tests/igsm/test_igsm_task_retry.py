"""Retry data (Part 2.2) and the IGSMTask contract."""
import random

import pytest
import torch

import tasks
from tasks.igsm import PRESETS, IGSMTask, generate, get_tokenizer, verify, with_retries
from tasks.igsm.sequence import encode
from tasks.igsm.text import step_sentence


@pytest.mark.parametrize("mode", ["perfect", "weak", "miss"])
def test_retry_data_verifies_and_inserts_the_right_parameters(mode):
    rng = random.Random(0)
    tok = get_tokenizer(23)
    total = 0
    for _ in range(40):
        p = generate(PRESETS["med"], rng)
        steps = with_retries(p, rng, 0.5, mode)
        text = ". ".join(step_sentence(p.structure, s) for s in steps) + f". <ANS> {p.answer}"
        rep = verify(p, text)
        assert rep.correct and rep.n_retracted == sum(s.back for s in steps)
        total += rep.n_retracted
        known = set()
        later = [s.param for s in p.steps]
        for s in steps:
            if s.back:
                if mode == "perfect":
                    assert not set(p.graph.parents(s.param)) <= known and s.param not in known
                elif mode == "weak":
                    assert s.param in later[len(known) + 1:]
                else:
                    assert s.param not in known
            else:
                known.add(s.param)
        e = encode(p, tok, steps, mask_retry=True)
        assert all(not e.loss_mask[i] for i in e.retry_tokens)
        n_name = sum(len(tok.encode(p.structure.param_name(s.param))) for s in steps if s.back)
        assert len(e.retry_tokens) == n_name
    assert total > 20


def test_retry_p_zero_and_bad_input():
    p = generate(PRESETS["small"], random.Random(0))
    assert with_retries(p, random.Random(0), 0.0) == p.steps
    with pytest.raises(ValueError, match="'mode' = 'x'"):
        with_retries(p, random.Random(0), 0.5, "x")
    with pytest.raises(ValueError, match="'p' = 1.5"):
        with_retries(p, random.Random(0), 1.5)


def test_task_contract():
    task = IGSMTask("small")
    assert tasks.from_spec(task.spec()) == task
    t2 = IGSMTask("med", retry="weak", retry_p=0.1, fmt="qp", op_max=10)
    assert tasks.from_spec(t2.spec()) == t2 and t2.config.fmt == "qp"
    b0 = list(zip(range(3), task.batches(4, 128, seed=5)))
    b2 = next(task.batches(4, 128, seed=5, start=2))
    assert torch.equal(b0[2][1].tokens, b2.tokens) and torch.equal(b0[2][1].loss_mask, b2.loss_mask)
    b = b0[0][1]
    assert b.tokens.shape == (4, 128) and b.tokens.max() < task.d_vocab
    tok = task.tokenizer
    for row in range(4):  # the loss covers exactly the tokens after <SOL> up to <EOS>
        ids, m = b.tokens[row].tolist(), b.loss_mask[row].tolist()
        inside = False
        for t, mk in zip(ids, m):
            if t == tok.sol:
                assert not mk
                inside = True
                continue
            assert mk == inside
            if t == tok.eos:
                inside = False
    assert set(task.presets()) == {"paper", "small"}
    assert task.presets()["paper"]["train"]["lr"] == 2e-3


def test_sample_and_eval_sets():
    task = IGSMTask("med")
    s = task.sample(3, seed=1, op=7)
    assert s.tokens.shape[0] == 3 and all(x.problem.op == 7 for x in s.samples)
    assert task.tokenizer.decode(s.samples[0].ids) == s.samples[0].text
    ev = IGSMTask("small").eval_sets(n=4)
    assert set(ev) == {"op<=4", "op=4", "op=5", "op=6", "reask"}
    assert all(p.split == "test" for k, ps in ev.items() if k != "reask" for p in ps)
    assert all(p.op == 6 for p in ev["op=6"])


@pytest.mark.parametrize("kw,field", [({"retry": "x"}, "retry"), ({"retry_p": 2}, "retry_p"),
                                      ({"loss_on": "q"}, "loss_on"), ({"modulus": 1}, "modulus")])
def test_task_bad_input(kw, field):
    with pytest.raises(ValueError, match=f"'{field}'"):
        IGSMTask("small", **kw)
    with pytest.raises(ValueError, match="'preset'"):
        IGSMTask("huge")


@pytest.mark.slow
def test_windows_fit_paper_problems():
    for preset in ("med", "hard"):
        task = IGSMTask(preset)
        b = next(task.batches(16, seed=0))
        assert b.tokens.shape == (16, task.n_ctx) and (b.tokens != 0).float().mean() > 0.5


def test_from_spec_partial_config_keeps_the_preset_values():
    """A partial generator config (nested or flat) overrides only what it names; the rest stays the preset's."""
    from tasks.igsm import PRESETS, IGSMTask

    nested = IGSMTask.from_spec({"kind": "igsm", "preset": "small", "config": {"fmt": "qp"}})
    assert nested.config == PRESETS["small"].with_(fmt="qp")  # not the class defaults (op_max 15)
    flat = IGSMTask.from_spec({"kind": "igsm", "preset": "small", "op_max": 3, "ip_max": 4})
    assert (flat.config.op_max, flat.config.ip_max, flat.config.modulus) == (3, 4, 23)
    assert IGSMTask.from_spec(flat.spec()) == flat


def test_run_config_accepts_flat_generator_overrides():
    from plm_app.runconfig import ConfigError, resolve

    rc = resolve("igsm", {"task": {"preset": "small", "op_max": 3, "ip_max": 4}, "model": {"preset": "tiny"},
                          "train": {"max_steps": 1}})
    assert rc.task.config.op_max == 3 and rc.model.task["config"]["ip_max"] == 4
    import pytest
    with pytest.raises(ConfigError, match="nonsense"):
        resolve("igsm", {"task": {"preset": "small", "nonsense": 1}, "model": {}, "train": {"max_steps": 1}})


def test_eval_sets_follow_an_overridden_op_max():
    """med's OOD ops (20-23) cannot be drawn with ip_max=4; an overridden generator gets op_max+1, op_max+2."""
    from tasks.igsm import IGSMTask

    assert IGSMTask("med").ood_ops() == (20, 21, 22, 23)
    t = IGSMTask("med", op_max=3, ip_max=4)
    assert t.ood_ops() == (4, 5)
    sets = t.eval_sets(n=3)
    assert sorted(sets) == sorted(["op<=3", "op=3", "op=4", "op=5", "reask"])
    assert all(p.op == 5 for p in sets["op=5"])


def test_specs_written_before_the_names_field_keep_their_names_and_vocabulary():
    """A shipped model's spec (a full generator config without ``names``) keeps the 1,499 names and the
    1,655-word vocabulary it was trained on; new tasks use all 1,553 names and the appended vocabulary."""
    from tasks.igsm import IGSMTask

    spec = IGSMTask("tiny").spec()
    assert spec["config"]["names"] == "all" and IGSMTask.from_spec(spec) == IGSMTask("tiny")
    old = dict(spec, config={k: v for k, v in spec["config"].items() if k not in ("names", "template_hash")})
    task = IGSMTask.from_spec(old)
    assert task.config.names == "parseable" and task.d_vocab == 1655 < IGSMTask("tiny").d_vocab == 1702
    assert task.tokenizer.vocab == IGSMTask("tiny").tokenizer.vocab[:1655]
    assert all("'" not in n for s in task.sample(30).samples for row in s.problem.structure.names for n in row)


def test_specs_written_before_the_generator_field_reproduce_the_first_release_draw_for_draw():
    """Shipped models are measured on the data they were trained on: an old spec selects the v1 generator, whose
    samples, reask sets and batches equal the first release's. The digests were computed by running the first
    release's code (commit fe8730f) on these specs; nothing here is computed by the code under test."""
    import hashlib

    from tasks.igsm import IGSMTask

    base = {"op": None, "modulus": 23, "shuffle": "random", "split": "train", "hash_modulus": 23,
            "train_buckets": 17, "max_parents": 4, "letters": 52}
    cases = [("tiny", dict(base, op_max=3, ip_max=4, fmt="pq", letter_order="sequential"), "6ef2fe9c0f94201d", 151931),
             ("med", dict(base, op_max=15, ip_max=20, fmt="pq", letter_order="random"), "b5566d74507fdf2b", 649279)]
    for preset, config, digest, token_sum in cases:
        spec = {"kind": "igsm", "preset": preset, "n_ctx": {"tiny": 192, "med": 768}[preset], "retry": None,
                "retry_p": 0.5, "loss_on": "solution", "mask_retry": False, "config": config}
        t = IGSMTask.from_spec(spec)
        assert (t.config.generator, t.config.names) == ("v1", "parseable")
        texts = [s.text for s in t.sample(40, seed=5).samples] + [p.text for p in t.eval_sets(n=10)["reask"]]
        assert hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16] == digest
        assert int(next(t.batches(4, seed=2)).tokens.sum()) == token_sum


def _mentioned_before(steps, i):
    """Parameters named in the solution before position i (computed or retracted)."""
    return {s.param for s in steps[:i]}


def test_paper_rule_perfect_names_a_parameter_not_yet_mentioned_and_not_computable():
    """Part 2.2 §4 (PAPERS.md "Retry data"): the wrong parameter cannot be computed next and is not yet mentioned in
    the solution, so it is neither computed nor already retracted; checked on generated data, repeats included."""
    rng = random.Random(1)
    n_back = repeats_v1 = 0
    for _ in range(60):
        p = generate(PRESETS["med"], rng)
        steps = with_retries(p, rng, 0.5, "perfect")
        for i, s in enumerate(steps):
            if s.back:
                known = {x.param for x in steps[:i] if not x.back}
                assert s.param not in _mentioned_before(steps, i)
                assert not set(p.graph.parents(s.param)) <= known
                n_back += 1
        old = with_retries(p, random.Random(7), 0.5, "perfect", rule="v1")
        repeats_v1 += sum(s.back and s.param in _mentioned_before(old, i) for i, s in enumerate(old))
    assert n_back > 40
    assert repeats_v1 > 0  # the first rule, kept for the models trained on it, does repeat names


def test_paper_rule_miss_names_a_parameter_from_the_problem_statement():
    """Part 2.2 §6 (PAPERS.md "Retry data"): retry_miss names a parameter that appears in the problem statement and
    not yet in the solution; the text check reads the names from the rendered problem."""
    from tasks.igsm.retry import stated_params
    from tasks.igsm.text import param_ref

    rng = random.Random(2)
    n_back = abstract_v1 = 0
    for _ in range(60):
        p = generate(PRESETS["med"], rng)
        steps = with_retries(p, rng, 0.5, "miss")
        stated = stated_params(p)
        for i, s in enumerate(steps):
            if s.back:
                named = param_ref(p.structure, s.param) in p.problem_text  # as a stated sentence writes it
                assert s.param in stated and (named or s.param == p.query)  # or as the question asks it
                assert s.param not in _mentioned_before(steps, i)
                nxt = next(x for x in steps[i:] if not x.back)
                assert s.param != nxt.param
                n_back += 1
        old = with_retries(p, random.Random(7), 0.5, "miss", rule="v1")
        abstract_v1 += sum(s.back and s.param not in stated for s in old)
    assert n_back > 40 and abstract_v1 > 0  # v1 also drew parameters the problem never names


def test_retry_rule_defaults_to_the_paper_and_old_specs_keep_v1():
    t = IGSMTask("tiny", retry="perfect")
    assert t.retry_rule == "paper" and t.spec()["retry_rule"] == "paper"
    assert tasks.from_spec(t.spec()) == t
    old = {k: v for k, v in IGSMTask("tiny", retry="perfect", mask_retry=True).spec().items() if k != "retry_rule"}
    assert IGSMTask.from_spec(old).retry_rule == "v1"  # a full spec written before the field: the shipped model's
    assert IGSMTask.from_spec({"preset": "tiny", "retry": "miss"}).retry_rule == "paper"  # a partial one: default
    assert "retry_rule" not in IGSMTask("tiny").spec()  # no retry data, no rule
    with pytest.raises(ValueError, match="'retry_rule'"):
        IGSMTask("tiny", retry="perfect", retry_rule="x")
    with pytest.raises(ValueError, match="'rule' = 'x'"):
        with_retries(generate(PRESETS["small"], random.Random(0)), random.Random(0), 0.5, "perfect", rule="x")
