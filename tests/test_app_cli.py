"""The app layer's own rules: one --set parser for every subcommand, the task built once, a grammar file read once,
subcommands found from plm_app/commands."""
from __future__ import annotations

import pytest

import tasks
from plm_app import cli, overrides, runconfig
from plm_app.commands import analyze
from tasks.cfg import CFGTask, loading


@pytest.mark.parametrize("raw, value", [("1e-3", 0.001), ("true", True), ("[0.9, 0.95]", [0.9, 0.95]),
                                        ('"x y"', "x y"), ("cfg3f", "cfg3f"), ("abc", "abc"), ("7", 7)])
def test_one_set_parser_reads_toml_for_every_subcommand(raw, value):
    assert overrides.parse_value(raw) == value
    assert runconfig.parse_override(f"train.k={raw}") == ("train", "k", value)  # train
    assert analyze.parse_assignments([f"k={raw}"]) == {"k": value}  # analyze: the same function
    assert analyze.parse_assignments is overrides.parse_assignments


def test_set_without_equals_is_refused_naming_the_item():
    with pytest.raises(ValueError, match="'n512'"):
        overrides.parse_assignments(["n512"])


def test_train_with_a_preset_builds_the_task_once(tmp_path, monkeypatch):
    calls = []
    real = tasks.from_spec
    monkeypatch.setattr(tasks, "from_spec", lambda spec: calls.append(spec) or real(spec))
    assert cli.main(["train", "cfg", "--preset", "small", "--set", "task.grammar=demo", "--set", "model.preset=tiny",
                     "--set", "model.n_ctx=96", "--set", "train.max_steps=1", "--set", "train.batch_size=2",
                     "--set", "train.progress=false", "--run-dir", str(tmp_path / "run")]) == 0
    assert len(calls) == 1


def test_a_builtin_grammar_file_is_read_once(monkeypatch):
    reads = []
    real = loading.load
    monkeypatch.setattr(loading, "load", lambda path, **kw: reads.append(path) or real(path, **kw))
    loading.load_builtin.cache_clear()
    task = CFGTask("cfg3f")
    for _ in range(4):
        task.spec()
    assert len(reads) == 1
    loading.load_builtin.cache_clear()


def test_subcommands_are_the_modules_of_app_commands():
    modules = cli.command_modules()
    assert modules[:5] == ["plm_app.commands.info", "plm_app.commands.train",
                           "plm_app.commands.analyze", "plm_app.quickstart",
                           "plm_app.commands.models"]
    assert all(m.startswith("plm_app.") for m in modules)
