"""The task contract (tasks/base.py): the built-in tasks meet every member the analyses rely on; tasks and their
presets come from one registry, in TrainConfig's own keys."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tasks
from plm_interp.config import PLMConfig
from plm_interp.training.config import TrainConfig
from plm_interp.validation import check_known
from tasks.base import AnalysableTask, CFGAnalysisTask, IGSMAnalysisTask, missing_members
from tasks.cfg import CFGTask
from tasks.igsm import IGSMTask

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def built():
    return {"cfg": CFGTask("demo"), "igsm": IGSMTask("small")}


@pytest.mark.parametrize("kind, protocol", [("cfg", CFGAnalysisTask), ("igsm", IGSMAnalysisTask)])
def test_builtin_tasks_meet_the_analysis_contract(built, kind, protocol):
    task = built[kind]
    assert isinstance(task, AnalysableTask) and isinstance(task, protocol)
    assert missing_members(task, protocol) == []
    assert task.kind == kind and isinstance(task.d_vocab, int)
    assert len(task.sample(2, seed=0).tokens if kind == "cfg" else task.sample(2, seed=0).samples) == 2


def test_the_contract_names_what_a_task_lacks(built):
    class Half:
        kind = "cfg"
        d_vocab = 4

    assert {"sample", "tokenizer", "grammar", "accepts"} <= set(missing_members(Half(), CFGAnalysisTask))


def test_every_task_member_the_analyses_use_is_declared():
    """Scan the analyses for ``task.X``: every X is declared by one of the contracts (so none is used unwritten)."""
    declared = set()
    for proto in (AnalysableTask, CFGAnalysisTask, IGSMAnalysisTask):
        declared |= {n for n in dir(proto) if not n.startswith("_")} | set(proto.__annotations__)
    used = set()
    for path in (ROOT / "analyses").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "task":
                used.add(node.attr)
    assert used and used <= declared, f"undeclared task members used by analyses: {sorted(used - declared)}"


def test_tasks_are_found_in_one_registry():
    assert {"cfg", "igsm"} <= set(tasks.task_names())
    assert tasks.from_spec({"kind": "cfg", "grammar": "demo"}) == CFGTask("demo")


def test_register_task_works_as_a_class_decorator():
    @tasks.register_task
    class Toy(CFGTask):
        kind = "toy_contract"

        @classmethod
        def from_spec(cls, spec):
            return cls("demo")

    assert "toy_contract" in tasks.task_names() and isinstance(tasks.from_spec({"kind": "toy_contract"}), Toy)


@pytest.mark.parametrize("kind", ["cfg", "igsm"])
def test_presets_are_in_the_config_classes_own_keys(built, kind):
    for name, preset in built[kind].presets().items():
        check_known(TrainConfig, preset["train"], f"{kind} preset {name} train")
        check_known(PLMConfig.field_hints(), preset["model"], f"{kind} preset {name} model")
        TrainConfig.from_dict(dict(preset["train"]))


def test_an_entry_point_adds_a_task_kind_in_a_fresh_process(tmp_path):
    """An installed distribution declaring its Task class in the group plm_interp.tasks is found by from_spec."""
    import os
    import subprocess
    import sys

    (tmp_path / "ep_task.py").write_text(
        "from tasks.cfg import CFGTask\n"
        "class EpTask(CFGTask):\n    kind = 'ep_task'\n"
        "    @classmethod\n    def from_spec(cls, spec):\n        return cls('demo')\n")
    dist = tmp_path / "ep_task-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-task\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[plm_interp.tasks]\nep_task = ep_task:EpTask\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    code = "import tasks; t = tasks.from_spec({'kind': 'ep_task'}); print(type(t).__name__, tasks.task_names())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("EpTask") and "'cfg'" in out.stdout and "'ep_task'" in out.stdout
