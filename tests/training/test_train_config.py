"""TrainConfig and run-config resolution: bad values are refused before anything runs, naming the key."""
from __future__ import annotations

import pytest
import train_helpers  # noqa: F401  (registers the count_test task)

from plm_interp.config import ConfigError
from plm_interp.training import TrainConfig
from plm_app import runconfig


@pytest.mark.parametrize("field, value, words", [
    ("lr", "fast", ["train.lr", "wrong type", "float"]),
    ("lr", 0.0, ["train.lr", "> 0"]),
    ("batch_size", 2.5, ["train.batch_size", "int"]),
    ("batch_size", True, ["train.batch_size", "int"]),
    ("betas", [0.9], ["train.betas"]),
    ("betas", [0.9, 1.0], ["train.betas", "[0, 1)"]),
    ("schedule", "exp", ["train.schedule", "cosine"]),
    ("precision", "fp8", ["train.precision"]),
    ("decay_params", ["matrix", "weights"], ["train.decay_params", "'weights'"]),
    ("min_lr_ratio", 1.5, ["train.min_lr_ratio"]),
    ("grad_clip", -1.0, ["train.grad_clip"]),
    ("micro_batch_size", 3, ["train.micro_batch_size", "divide"]),
    ("num_workers", -1, ["train.num_workers"]),
])
def test_bad_train_values_are_refused_by_name(field, value, words):
    with pytest.raises(ConfigError) as exc:
        TrainConfig(**{"max_steps": 10, "batch_size": 8, field: value})
    for word in words:
        assert word in str(exc.value)


def test_budget_is_required_and_tokens_convert_to_steps():
    with pytest.raises(ConfigError, match="max_steps"):
        TrainConfig()
    assert TrainConfig(batch_size=4, max_tokens=1000).total_steps(n_ctx=16) == 16  # ceil(1000 / 64)
    assert TrainConfig(batch_size=4, max_tokens=1000, max_steps=5).total_steps(n_ctx=16) == 5


def test_lossless_conversions_and_unknown_keys():
    cfg = TrainConfig.from_dict({"max_steps": 3, "lr": 1, "betas": [0.9, 0.95]})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.betas == (0.9, 0.95)
    with pytest.raises(ConfigError, match=r"train\.learning_rate"):
        TrainConfig.from_dict({"max_steps": 3, "learning_rate": 1e-3})


def test_grad_accum_is_derived_from_the_global_batch():
    cfg = TrainConfig(batch_size=16, micro_batch_size=4, max_steps=1)
    assert [cfg.grad_accum(w) for w in (1, 2, 4)] == [4, 2, 1]
    with pytest.raises(ConfigError, match="batch_size"):
        cfg.grad_accum(3)
    assert TrainConfig(batch_size=16, max_steps=1).grad_accum(2) == 1


@pytest.mark.parametrize("item, expected", [
    ("train.lr=1e-3", ("train", "lr", 1e-3)),
    ("train.betas=[0.9, 0.95]", ("train", "betas", [0.9, 0.95])),
    ("train.compile=true", ("train", "compile", True)),
    ("task.grammar=cfg3f", ("task", "grammar", "cfg3f")),
    ('task.grammar="3"', ("task", "grammar", "3")),
])
def test_parse_override(item, expected):
    assert runconfig.parse_override(item) == expected


@pytest.mark.parametrize("item", ["lr=1", "optim.lr=1", "train.lr"])
def test_malformed_override(item):
    with pytest.raises(ConfigError):
        runconfig.parse_override(item)


def _layers(**sections):
    return runconfig.merge({"train": {"max_steps": 2}, "model": {"preset": "tiny", "n_ctx": 16}}, sections)


def test_resolve_fills_model_from_task_and_records_the_task():
    cfg = runconfig.resolve("count_test", _layers())
    assert cfg.model.d_vocab == 16 and cfg.model.n_ctx == 16 and cfg.model.d_model == 32
    assert cfg.model.task == {"kind": "count_test", "vocab": 16}
    assert cfg.model.seed == cfg.train.seed


@pytest.mark.parametrize("sections, words", [
    ({"task": {"vocabulary": 3}}, ["task.vocabulary"]),
    ({"task": {"kind": "cfg"}}, ["task.kind"]),
    ({"model": {"d_modle": 3}}, ["model.d_modle"]),
    ({"model": {"n_heads": "2"}}, ["model.n_heads", "int"]),
    ({"model": {"preset": "huge"}}, ["model.preset", "huge"]),
    ({"model": {"d_vocab": 4}}, ["model.d_vocab", "smaller"]),
    ({"model": {"positional": "alibi"}}, ["positional", "alibi"]),
    ({"model": {"task": {}}}, ["model.task"]),
    ({"train": {"keep_checkpoints": 0}}, ["train.keep_checkpoints"]),
])
def test_resolve_refuses_bad_sections_by_name(sections, words):
    with pytest.raises(ConfigError) as exc:
        runconfig.resolve("count_test", _layers(**sections))
    for word in words:
        assert word in str(exc.value)


def test_config_file_sections(tmp_path):
    good = tmp_path / "run.toml"
    good.write_text('[task]\nvocab = 16\n[model]\npreset = "tiny"\nn_ctx = 16\n[train]\nmax_steps = 5\n'
                    'betas = [0.9, 0.95]\n')
    cfg = runconfig.resolve("count_test", runconfig.load_file(good))
    assert cfg.train.betas == (0.9, 0.95)
    bad = tmp_path / "bad.toml"
    bad.write_text("[optimizer]\nlr = 1\n")
    with pytest.raises(ConfigError, match="optimizer"):
        runconfig.load_file(bad)
