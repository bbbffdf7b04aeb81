"""A model checkpoint's two files: ``model.safetensors`` (weights) + ``config.json`` (PLMConfig and the weights'
sha256), written and read back verified.

Reading needs no network and verifies everything it can before anything is built: the config's fields, the
weights' checksum, the key set and every shape. Each failure raises :class:`CheckpointError` naming the file and
the offending key or field. This module knows the files, not the model class: ``HookedPLM.from_pretrained``
builds the model from what :func:`read_checkpoint` returns, and ``plm_interp.checkpoint`` is the function API
(``save_model`` / ``load_model``) over both.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from plm_interp.io import atomic_write_json, atomic_writer, sha256_file
from plm_interp.model.config import PLMConfig
from plm_interp.validation import ConfigError, check_device_available

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the message names the file and what is wrong."""


class UnverifiedWeightsWarning(UserWarning):
    """The checkpoint loaded, but its config records no checksum, so its weights could not be verified."""


def save_model(model, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (weights first, then the config that vouches for them)."""
    directory = Path(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_writer(directory / WEIGHTS) as fh:  # plain os.write: a full disk says ENOSPC and the file
        fh.write(save(state, metadata={"format": "plm-interp", "version": str(FORMAT_VERSION)}))
    atomic_write_json(directory / CONFIG, {"format_version": FORMAT_VERSION, "config": model.cfg.to_dict(),
                                           "weights_sha256": sha256_file(directory / WEIGHTS)})
    return directory


def read_checkpoint(directory: str | Path, device: str | None = None) -> tuple[PLMConfig, dict[str, torch.Tensor]]:
    """The verified config (its ``device`` set to ``device``) and CPU weights of a checkpoint written by
    :func:`save_model`; the caller builds the model and checks the weights against it (:func:`check_state_dict`).

    The default device is the CPU, whatever device the checkpoint was trained on: a model recorded on ``cuda``
    must still open on a laptop.
    """
    device = "cpu" if device is None else device
    if str(device).startswith(("cuda", "mps")):  # before reading anything
        check_device_available(str(device), "load_model field 'device'")

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG, directory / WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{path}: file not found")
    try:
        meta = json.loads(config_path.read_bytes().decode("utf-8"))
        cfg_dict = meta["config"]
    except (ValueError, KeyError, TypeError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise CheckpointError(f"{config_path}: not a plm-interp config ({exc})") from exc
    version = meta.get("format_version", FORMAT_VERSION)  # absent: written by hand, judged by its fields
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: format_version = {version!r}, but this plm-interp reads format "
                              f"{FORMAT_VERSION}; load it with the plm-interp version that wrote it")
    cfg_dict = {**cfg_dict, "device": device} if isinstance(cfg_dict, dict) else cfg_dict
    try:
        cfg = PLMConfig.from_dict(cfg_dict, source=str(config_path))
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{config_path}: {exc}") from exc
    expected = meta.get("weights_sha256")
    if expected is None:  # written by hand or by another tool: load, but do not pretend it was verified
        warnings.warn(f"{config_path} has no weights_sha256: the weights in {weights_path} cannot be verified "
                      "against truncation or corruption (re-save with save_model to add the checksum)",
                      UnverifiedWeightsWarning, stacklevel=2)
    elif sha256_file(weights_path) != expected:
        raise CheckpointError(f"{weights_path}: checksum mismatch (file truncated or corrupted)")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path}: cannot read safetensors ({exc})") from exc
    return cfg, state


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> None:
    """Raise :class:`CheckpointError` naming the first missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        raise CheckpointError(f"{source}: missing key(s) {missing[:5]}")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected key(s) {unexpected[:5]}")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise CheckpointError(f"{source}: key {key!r} has shape {tuple(tensor.shape)}, "
                                  f"the config needs {tuple(own[key].shape)}")
        if own[key].is_floating_point() and not tensor.is_floating_point():
            # load_state_dict would cast int64 weights to float without a word: a model of rounded weights
            raise CheckpointError(f"{source}: key {key!r} holds {tensor.dtype} values, but the model's weights are "
                                  f"{own[key].dtype}; these are not float weights (re-save the model with save_model)")
