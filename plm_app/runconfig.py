"""A run's configuration: ``[task]``, ``[model]``, ``[train]`` from a preset, a file and ``--set`` overrides.

Layers, later wins: the task's training preset (``task.presets()[name]``, optional) → the config file
(TOML, or the JSON ``config.json`` a previous run saved) → ``--set section.key=value``. Everything is
validated here, before any data is generated or file written, and every error names ``section.key``.

``[model]`` holds :class:`~plm_interp.config.PLMConfig` fields, optionally ``preset = "small"`` (a size from
:data:`~plm_interp.config.PRESETS`) plus overrides; ``d_vocab`` defaults to the task's, ``n_ctx`` to the
task's ``n_ctx`` attribute if it has one, ``seed`` to ``train.seed``; ``task`` is always ``task.spec()``.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tasks
from plm_app.overrides import parse_assignment
from plm_interp.config import PRESETS, ConfigError, PLMConfig
from plm_interp.training import init_from
from plm_interp.training.config import TrainConfig
from plm_interp.validation import check_known, check_types

SECTIONS = ("task", "model", "train")


@dataclass
class RunConfig:
    task: Any  # a tasks.base.Task
    model: PLMConfig
    train: TrainConfig

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The resolved config, in the file format (re-loadable with ``--config config.json``)."""
        model = {k: v for k, v in self.model.to_dict().items() if k != "task"}
        return {"task": self.task.spec(), "model": model, "train": self.train.to_dict()}


def load_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a TOML (or JSON) config file into sections; unknown sections are refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    try:
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); restore it, "
                          "or give the settings with --config / --set") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    return _sections(data, str(path))


def parse_override(item: str) -> tuple[str, str, Any]:
    """``"train.lr=1e-3"`` → ``("train", "lr", 0.001)``. Values are TOML (``[0.9, 0.95]``, ``true``, ``"x"``);
    a bare word that is not valid TOML is taken as a string (``--set task.grammar=cfg3f``)."""
    key, value = parse_assignment(item, "section.key=value, e.g. train.lr=1e-3")
    section, dot, name = key.partition(".")
    if not dot or not name.strip():
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.lr=1e-3")
    if section not in SECTIONS:
        raise ConfigError(f"--set {item!r}: unknown section {section!r}; sections: {list(SECTIONS)}")
    return section, name.strip(), value


def merge(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for layer in layers:
        for section, values in layer.items():
            out[section].update(values)
    return out


def build_task(kind: str, section: dict[str, Any]):
    """The task of the ``[task]`` section, built once and checked: unknown keys are refused as ``task.key``."""
    task_fields = dict(section)
    if task_fields.pop("kind", kind) != kind:
        raise ConfigError(f"task.kind = {section['kind']!r} disagrees with the command's task {kind!r}")
    if kind not in tasks.task_names():
        raise ConfigError(f"task {kind!r} is not a registered task; known: {tasks.task_names()}")
    try:
        task = tasks.from_spec({"kind": kind, **task_fields})
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[task]: {exc}") from exc
    spec = task.spec()
    known = set(spec) | {k for v in spec.values() if isinstance(v, dict) for k in v}  # nested fields set flat
    unknown = sorted(set(task_fields) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {[f'task.{k}' for k in unknown]} for task {kind!r}; "
                          f"known: {sorted(set(spec) - {'kind'})}")
    return task


def resolve(kind: str, layers: dict[str, dict[str, Any]], task=None) -> RunConfig:
    """Build and validate task, model config and train config from merged sections.

    ``task``: the already built task of ``layers["task"]`` (from :func:`build_task`), so that ``--preset``
    does not build it twice; built here when not given.
    """
    task = build_task(kind, layers["task"]) if task is None else task
    train_cfg = TrainConfig.from_dict(dict(layers["train"]))
    model_fields = dict(layers["model"])
    if train_cfg.init_from is not None:
        source = init_from.load_source(train_cfg.init_from)
        if not model_fields:  # no [model] given: the source's architecture
            model_fields = {k: v for k, v in init_from.architecture(source.cfg).items()}
    model_cfg = _model_config(model_fields, task, train_cfg)
    if train_cfg.init_from is not None:
        init_from.check_compatible(source.cfg, model_cfg, train_cfg.init_from)
    if model_cfg.attention_dir == "causal" and model_cfg.n_ctx < 2:  # else the first step fails, after config.json
        raise ConfigError(f"model.n_ctx = {model_cfg.n_ctx}: a next-token loss needs at least 2 positions (each "
                          "predicts the next); use model.n_ctx >= 2")
    if model_cfg.attention_dir == "bidirectional" and not hasattr(task, "mlm_batches"):
        raise ConfigError(f"model.attention_dir = 'bidirectional': task {kind!r} has no masked-LM stream, and "
                          "next-token loss on a bidirectional model would let it see the token it predicts")
    return RunConfig(task, model_cfg, train_cfg)


def preset_layer(task, name: str) -> dict[str, dict[str, Any]]:
    """The task's training preset ``name`` as config sections (``task.presets()``)."""
    presets = task.presets()
    if name not in presets:
        raise ConfigError(f"--preset {name!r}: task {task.kind!r} has presets {sorted(presets)}")
    return _sections(presets[name], f"preset {name!r}")


def _model_config(fields: dict[str, Any], task, train_cfg: TrainConfig) -> PLMConfig:
    size = fields.pop("preset", None)
    if size is not None and size not in PRESETS:
        raise ConfigError(f"model.preset = {size!r} is not one of {sorted(PRESETS)}")
    if "task" in fields:
        raise ConfigError("model.task cannot be set: it is always the [task] section's task spec")
    check_known(PLMConfig.field_hints(), fields, "model")  # the scheme's settings (model.rotary_dim) among them
    fields = check_types(PLMConfig.field_hints(), fields, "model")
    fields = {**(PRESETS[size] if size else {}), **fields}
    fields.setdefault("d_vocab", task.d_vocab)
    if "n_ctx" not in fields:
        if not isinstance(getattr(task, "n_ctx", None), int):
            raise ConfigError(f"model.n_ctx is required for task {task.kind!r} (e.g. --set model.n_ctx=256)")
        fields["n_ctx"] = task.n_ctx
    fields.setdefault("seed", train_cfg.seed)
    missing = [k for k in ("d_model", "n_layers", "n_heads") if k not in fields]
    if missing:
        raise ConfigError(f"model: give a size preset (model.preset = one of {sorted(PRESETS)}) or the fields "
                          f"{['model.' + k for k in missing]}")
    if fields["d_vocab"] < task.d_vocab:
        raise ConfigError(f"model.d_vocab = {fields['d_vocab']} is smaller than the task's vocabulary "
                          f"({task.d_vocab} tokens)")
    try:
        return PLMConfig(**fields, task=task.spec())
    except ConfigError as exc:
        raise ConfigError(f"model: {exc}") from exc


def _sections(data: Any, source: str) -> dict[str, dict[str, Any]]:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table of sections {list(SECTIONS)}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; sections: {list(SECTIONS)}")
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table of key = value")
    return {s: dict(data.get(s, {})) for s in SECTIONS}
