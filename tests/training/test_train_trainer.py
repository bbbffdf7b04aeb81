"""The loop: it learns, accumulation is equivalent, budgets, callbacks, metrics, in-process resume."""
from __future__ import annotations

import pytest
import torch
from train_helpers import SequenceSource, small_config, source, state_equal, tiny_model

from plm_interp.training import Trainer, read_metrics, train


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/training/conftest.py


def test_it_learns_and_logs(tmp_path):
    result = train(tiny_model(), source(), small_config(max_steps=30, log_every=5), tmp_path)
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    assert records[-1]["loss"] < 0.6 * records[0]["loss"] and result.loss == records[-1]["loss"]
    assert {"lr", "tokens", "tokens_per_s", "grad_norm"} <= set(records[-1])
    assert result.tokens == records[-1]["tokens"] == 30 * 8 * 16


def test_grad_accumulation_matches_one_big_batch():
    a = Trainer(tiny_model(), SequenceSource(), small_config(max_steps=5, log_every=1))
    b = Trainer(tiny_model(), SequenceSource(), small_config(max_steps=5, log_every=1, micro_batch_size=2))
    assert (a.accum, b.accum) == (1, 4)
    a.fit(), b.fit()
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5), name


def test_token_budget_sets_the_step_count():
    result = train(tiny_model(), source(), small_config(max_steps=None, max_tokens=1000))
    assert result.step == 8  # ceil(1000 / (8 * 16))


def test_eval_callbacks_every_n_steps_and_at_the_end(tmp_path):
    calls = []

    def evaluate(model, step):
        calls.append((step, model.training, torch.is_grad_enabled()))
        return {"score": float(step)}
    train(tiny_model(), source(), small_config(max_steps=10, eval_every=4), tmp_path, callbacks=[evaluate])
    assert calls == [(4, False, False), (8, False, False), (10, False, False)]
    evals = [r for r in read_metrics(tmp_path) if "eval/score" in r]
    assert [(r["step"], r["eval/score"]) for r in evals] == [(4, 4.0), (8, 8.0), (10, 10.0)]


def test_resume_in_process_is_bit_identical_and_metrics_read_as_one_run(tmp_path):
    straight = Trainer(tiny_model(), source(), small_config(max_steps=12))
    straight.fit()
    first = Trainer(tiny_model(), source(), small_config(max_steps=12, ckpt_every=4), tmp_path)
    first.total_steps = 6  # stop early: the checkpoint at 4 is the last one written before "the crash"
    first.fit()
    (tmp_path / "checkpoints" / "step_00000006").rename(tmp_path / "checkpoints" / "step_00000006.gone")
    second = Trainer(tiny_model(seed=99), source(), small_config(max_steps=12, ckpt_every=4), tmp_path)
    result = second.fit(resume=True)
    assert result.resumed_from == 4 and result.step == 12
    assert state_equal(second.model.state_dict(), straight.model.state_dict())
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, 13))


def test_resume_refuses_a_different_data_stream(tmp_path):
    train(tiny_model(), source(), small_config(max_steps=4), tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        train(tiny_model(), source(), small_config(max_steps=4, batch_size=4), tmp_path)


def test_workers_give_the_same_training_as_the_main_process():
    a = Trainer(tiny_model(), source(), small_config(max_steps=4))
    b = Trainer(tiny_model(), source(), small_config(max_steps=4, num_workers=2))
    a.fit(), b.fit()
    assert state_equal(a.model.state_dict(), b.model.state_dict())


def test_bf16_autocast_runs_on_cpu():
    result = train(tiny_model(), source(), small_config(max_steps=3, precision="bf16"))
    assert result.loss is not None and result.loss == result.loss  # finite, not NaN


@pytest.mark.slow
def test_torch_compile():
    result = train(tiny_model(), source(), small_config(max_steps=3, compile=True))
    assert result.step == 3


def test_tensorboard_is_optional(tmp_path, capsys):
    try:
        import tensorboard  # noqa: F401
        installed = True
    except ImportError:
        installed = False
    train(tiny_model(), source(), small_config(max_steps=2, tensorboard=True), tmp_path)
    assert len(read_metrics(tmp_path)) == 2
    if installed:
        assert (tmp_path / "tensorboard").is_dir()
    else:
        assert "TensorBoard logging skipped" in capsys.readouterr().err
