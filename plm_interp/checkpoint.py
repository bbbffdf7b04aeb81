"""Model checkpoints as functions: :func:`save_model` / :func:`load_model` (``model.safetensors`` +
``config.json``, verified on load), for callers that hold a directory rather than a model class.

The files themselves are ``plm_interp/model/checkpoint_files.py`` (written and read back verified, knowing no
model class); building the model from them is ``HookedPLM.from_pretrained``. This module sits above both, so
neither imports it.
"""
from __future__ import annotations

from pathlib import Path

from plm_interp.model import HookedPLM
from plm_interp.model.checkpoint_files import (CONFIG, FORMAT_VERSION, WEIGHTS, CheckpointError,
                                               UnverifiedWeightsWarning, check_state_dict, read_checkpoint,
                                               save_model)


def load_model(directory: str | Path, device: str | None = None) -> HookedPLM:
    """Load a checkpoint written by :func:`save_model` (or :meth:`HookedPLM.save_pretrained`) onto ``device``.

    The default is the CPU, whatever device the checkpoint was trained on: a model recorded on ``cuda`` must
    still open on a laptop (pass ``device="cuda"`` to move it).
    """
    return HookedPLM.from_pretrained(directory, device=device)


__all__ = ["CONFIG", "FORMAT_VERSION", "WEIGHTS", "CheckpointError", "UnverifiedWeightsWarning", "check_state_dict",
           "load_model", "read_checkpoint", "save_model"]
