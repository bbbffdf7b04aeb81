"""``train.init_from``: start a run from trained weights instead of a random init.

Part 2.2 compares pretraining on retry data with *fine-tuning* an error-free model on it (full fine-tuning helps,
LoRA does not), and continuing a run under a new schedule is the same operation. The source is a model directory
(``config.json`` + ``model.safetensors``, e.g. another run's ``final/``) or the name of a shipped model.

The architecture comes from the source when the ``[model]`` section gives none, so
``plm-interp train igsm --set train.init_from=igsm-small --set task.retry=perfect ...`` fine-tunes that model on
retry data. Everything is checked while the config is resolved, before a run directory is written: the source
must load (checksums included) and have the same architecture and vocabulary as the model being trained. A
resumed run takes its weights from its checkpoint; ``init_from`` then only records where it started.
"""
from __future__ import annotations

from typing import Any

from plm_interp.config import ConfigError, PLMConfig

#: PLMConfig fields that may differ between the source and the run (they do not change which weights fit)
NOT_ARCHITECTURE = frozenset({"seed", "device", "model_name", "dtype", "task", "initializer_range"})


def load_source(ref: str):
    """The model ``ref`` names: a directory written by ``save_model``, else a shipped model's name."""
    from plm_interp.pretrained import load_model_ref

    try:
        return load_model_ref(ref, device="cpu")
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"train.init_from = {ref!r}: {exc}") from exc


def architecture(cfg: PLMConfig) -> dict[str, Any]:
    """The config fields that decide the weights' names and shapes and what they compute."""
    return {k: v for k, v in cfg.to_dict().items() if k not in NOT_ARCHITECTURE}


def check_compatible(source_cfg: PLMConfig, model_cfg: PLMConfig, ref: str) -> None:
    """Raise naming every architecture field where the run's model differs from the source's."""
    src, run = architecture(source_cfg), architecture(model_cfg)
    diffs = [f"model.{k}: source {src.get(k)!r}, run {run.get(k)!r}" for k in sorted(set(src) | set(run))
             if src.get(k) != run.get(k)]
    if diffs:
        raise ConfigError(f"train.init_from = {ref!r} does not fit the model being trained: {diffs}")
    if (source_cfg.task or {}).get("kind") not in (None, (model_cfg.task or {}).get("kind")):
        raise ConfigError(f"train.init_from = {ref!r} was trained on task {source_cfg.task.get('kind')!r}, "
                          f"this run is {model_cfg.task.get('kind')!r}")


def initialise(model, ref: str) -> None:
    """Copy the source's weights into ``model`` (which :func:`check_compatible` has accepted)."""
    source = load_source(ref)
    check_compatible(source.cfg, model.cfg, ref)
    model.load_state_dict(source.state_dict())
