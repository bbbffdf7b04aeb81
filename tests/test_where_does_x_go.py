"""docs/architecture.md's "where does X go?" recipes, followed to the letter with throwaway pieces: a positional
scheme with a setting of its own (one file), a task (one file) and an analysis (one module of the analyses
package), then a model of that scheme trained on that task and analysed end to end on a tiny config.

Each piece is written to ``tmp_path`` as its own file and loaded the way its registry finds the real ones; the
fixtures remove it from every registry afterwards, so no other test sees it.
"""
from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import analyses
import tasks
from analyses import registry
from plm_interp import ConfigError, HookedPLM, PLMConfig
from plm_interp.checkpoint import load_model
from plm_interp.model import positional
from plm_interp.model.positional import SCHEMES, scheme_names
from plm_interp.training import TaskSource, TrainConfig, train
from tasks import base as task_base

SCHEME = '''
"""alibi: a linear distance penalty per head (Press et al. 2022), a throwaway scheme with its own setting."""
from dataclasses import dataclass

import torch

from plm_interp.model.positional.base import AttentionPositional, ModelConfig, SchemeConfig, relative_offsets
from plm_interp.validation import ConfigError


@dataclass
class AlibiConfig(SchemeConfig):
    alibi_max_bias: float = 8.0  # head h of H scores -2^(-max_bias * h / H) * |i - j|

    def validate(self, cfg: ModelConfig) -> None:
        if not self.alibi_max_bias > 0:
            raise ConfigError(f"config field 'alibi_max_bias' must be > 0, got {self.alibi_max_bias!r}")


class Alibi(AttentionPositional):
    name, tl_name = "alibi", "alibi"
    config_class = AlibiConfig

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        h = torch.arange(1, cfg.n_heads + 1, dtype=torch.float64)
        self.register_buffer("slopes", 2.0 ** (-cfg.alibi_max_bias * h / cfg.n_heads), persistent=False)

    def score_bias(self, q, k, q_pos, k_pos):
        dist = relative_offsets(q_pos, k_pos).abs().to(self.cfg.torch_dtype)
        return -(self.slopes.to(dist.dtype)[:, None, None] * dist)[None]
'''

TASK = '''
"""copy: a random first half, then the same tokens again (the second half is exactly predictable)."""
import torch

from tasks.base import Batch, Task, register_task


class CopyTokenizer:
    def __init__(self, d_vocab):
        self.d_vocab = d_vocab
        self.vocab = [f"t{i}" for i in range(d_vocab)]

    def encode(self, words):
        return [self.vocab.index(w) for w in words.split()]

    def decode(self, ids):
        return " ".join(self.vocab[i] for i in ids)


class CopySamples:
    def __init__(self, tokens):
        self.tokens = tokens


@register_task
class CopyTask(Task):
    kind = "copy_throwaway"

    def __init__(self, d_vocab=8, half=6):
        self._d_vocab, self.half = d_vocab, half
        self.tokenizer = CopyTokenizer(d_vocab)

    @property
    def d_vocab(self):
        return self._d_vocab

    def spec(self):
        return {"kind": self.kind, "d_vocab": self._d_vocab, "half": self.half}

    @classmethod
    def from_spec(cls, spec):
        return cls(spec["d_vocab"], spec["half"])

    def sample(self, n, seed=0):
        first = torch.randint(0, self._d_vocab, (n, self.half), generator=torch.Generator().manual_seed(seed))
        return CopySamples(torch.cat([first, first], dim=1))

    def batches(self, batch_size, n_ctx, seed, start=0):
        step = start
        while True:
            yield Batch(self.sample(batch_size, seed=seed * 1_000_003 + step).tokens)
            step += 1
'''

ANALYSIS = '''
"""copy_accuracy: greedy next-token accuracy on the copied half, per position, beside a random-init control."""
from dataclasses import dataclass

import torch

from analyses._task import resolve_task, subjects
from analyses.registry import register
from analyses.shared.records import RecordsResult


@dataclass
class CopyAccuracyResult(RecordsResult):
    half: int = 0

    def accuracy(self, model="trained"):
        return self.record(model=model)["acc"]


@register("copy_accuracy")
def copy_accuracy(model, task=None, n=16, seed=0, controls=True):
    task = resolve_task(model, task)
    tokens = task.sample(n, seed=seed).tokens
    records = []
    for name, subject in subjects(model, controls, seed).items():
        with torch.no_grad():
            pred = subject(tokens).argmax(-1)[:, task.half - 1:-1]
        records.append({"model": name, "acc": float((pred == tokens[:, task.half:]).float().mean()), "n": n})
    return CopyAccuracyResult(records=records, settings={"n": n, "seed": seed}, half=task.half)
'''

NOT_NAMED_LIKE_ITS_MODULE = '''
from dataclasses import dataclass

from analyses.registry import register
from analyses.shared.records import RecordsResult


@register("mean_logit")
def mean_logit(model, task=None):
    return RecordsResult(records=[{"mean_logit": 0.0}])
'''


def _load_as(name: str, path: Path):
    """What a package's import loop does for a file in it: import it under the package's name."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def alibi_scheme(tmp_path):
    """A new positional scheme, with a setting of its own, as one file (docs/architecture.md: "one file in
    plm_interp/model/positional/ ... registered there")."""
    path = tmp_path / "alibi.py"
    path.write_text(textwrap.dedent(SCHEME))
    _load_as("plm_interp.model.positional.alibi", path)
    try:
        yield "alibi"
    finally:
        SCHEMES.pop("alibi", None)
        sys.modules.pop("plm_interp.model.positional.alibi", None)
        vars(positional).pop("alibi", None)


@pytest.fixture
def copy_task(tmp_path):
    """A new task as one file: a Task subclass registered with @register_task."""
    path = tmp_path / "copy_task.py"
    path.write_text(textwrap.dedent(TASK))
    module = _load_as("tasks.copy_throwaway", path)
    try:
        yield module.CopyTask
    finally:
        task_base._REGISTRY.pop("copy_throwaway", None)
        sys.modules.pop("tasks.copy_throwaway", None)


@pytest.fixture
def copy_analysis(tmp_path, monkeypatch):
    """New analyses as modules of the analyses package, found by importing every module of the package (no list
    to edit): ``copy_accuracy.py`` defines ``copy_accuracy``, ``logit_stats.py`` defines ``mean_logit``."""
    folder = tmp_path / "more_analyses"
    folder.mkdir()
    (folder / "copy_accuracy.py").write_text(textwrap.dedent(ANALYSIS))
    (folder / "logit_stats.py").write_text(textwrap.dedent(NOT_NAMED_LIKE_ITS_MODULE))
    monkeypatch.setattr(analyses, "__path__", [*analyses.__path__, str(folder)])
    found = registry.discover(analyses)
    try:
        yield found
    finally:
        for name in ("copy_accuracy", "mean_logit"):
            registry._ANALYSES.pop(name, None)
        for module in ("copy_accuracy", "logit_stats"):
            sys.modules.pop(f"analyses.{module}", None)
            vars(analyses).pop(module, None)


def test_a_new_scheme_with_its_own_setting_is_one_file(alibi_scheme, tmp_path):
    assert alibi_scheme in scheme_names()
    base = dict(d_model=32, n_layers=2, n_heads=4, d_vocab=8, n_ctx=16, seed=0)
    cfg = PLMConfig(**base, positional="alibi", alibi_max_bias=4.0)
    # the setting reads, writes, round-trips and is checked like a field of the config, which never names it
    assert cfg.alibi_max_bias == 4.0 and cfg.positional_embedding_type == "alibi"
    assert cfg.to_dict()["alibi_max_bias"] == 4.0 and PLMConfig.from_dict(cfg.to_dict()) == cfg
    assert "alibi_max_bias" in PLMConfig.field_hints() and PLMConfig(**base, positional="alibi").alibi_max_bias == 8.0
    assert cfg.replace(d_model=64).alibi_max_bias == 4.0
    with pytest.raises(ConfigError, match="alibi_max_bias"):
        PLMConfig(**base, positional="alibi", alibi_max_bias=-1.0)
    with pytest.raises(ConfigError, match="alibi_max_bias.*wrong type"):
        PLMConfig(**base, positional="alibi", alibi_max_bias="steep")
    assert "alibi_max_bias" not in PLMConfig(**base, positional="rot", alibi_max_bias=2.0).to_dict()
    # the model is built with it: the bias sits in hook_attn_scores, and a checkpoint keeps the setting
    model = HookedPLM(cfg)
    tokens = torch.randint(0, 8, (2, 10), generator=torch.Generator().manual_seed(0))
    _, cache = model.run_with_cache(tokens)
    scores = cache["blocks.0.attn.hook_attn_scores"]
    assert scores.shape == (2, 4, 10, 10) and torch.isfinite(scores.tril()).all()
    model.save_pretrained(tmp_path / "alibi_model")
    again = load_model(tmp_path / "alibi_model")
    assert again.cfg.alibi_max_bias == 4.0 and torch.equal(again(tokens), model(tokens))


def test_a_scheme_task_and_analysis_added_as_files_train_and_analyse_end_to_end(alibi_scheme, copy_task,
                                                                               copy_analysis, tmp_path):
    task = copy_task()
    assert task.kind in tasks.task_names() and tasks.from_spec(task.spec()).spec() == task.spec()
    assert {"analyses.copy_accuracy", "analyses.logit_stats"} <= set(copy_analysis)

    # train: the model records its task, so the analysis needs nothing else
    model = HookedPLM(PLMConfig(d_model=32, n_layers=1, n_heads=2, d_vocab=task.d_vocab, n_ctx=12, seed=0,
                                positional="alibi", alibi_max_bias=2.0, task=task.spec()))
    result = train(model, TaskSource(task, 12), TrainConfig(max_steps=3, batch_size=8, progress=False, log_every=1))
    assert result is not None

    # analyse: analyses.NAME calls the analysis when its function is named like its module ...
    report = analyses.copy_accuracy(model.eval(), n=8)
    assert {r["model"] for r in report.records} == {"trained", "random-init"}
    assert 0.0 <= report.accuracy() <= 1.0 and "acc" in report.table()
    report.save(tmp_path / "report")
    assert (tmp_path / "report" / "result.json").is_file()
    assert analyses.run("copy_accuracy", model, controls=False).records[0]["n"] == 16

    # ... and only then: logit_stats.py defines mean_logit, so analyses.logit_stats is a plain module
    assert not callable(analyses.logit_stats) and analyses.run("mean_logit", model).records == [{"mean_logit": 0.0}]
