"""Finding and loading shipped models by name, offline.

A shipped model is a directory ``<root>/<name>/`` holding what :func:`plm_interp.checkpoint.save_model` writes
(``model.safetensors``, ``config.json``) plus ``card.json`` and ``MODEL_CARD.md``. The package's own models
live in ``plm_interp/pretrained/models/``; directories listed in the environment variable
:data:`ENV_VAR` (``os.pathsep``-separated) are searched first, so a user's own models load by name the same way.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from plm_interp.checkpoint import CONFIG, WEIGHTS, load_model
from plm_interp.io import sha256_file
from plm_interp.pretrained.card import check_card

PACKAGE_ROOT = Path(__file__).resolve().parent / "models"
ENV_VAR = "PLM_INTERP_MODELS"
CARD_JSON, CARD_MD = "card.json", "MODEL_CARD.md"
#: every file a shipped model directory must hold
MODEL_FILES = (WEIGHTS, CONFIG, CARD_JSON, CARD_MD)
#: names are directory names: no path separators, no hidden files
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def roots(root: str | Path | None = None) -> list[Path]:
    """Where models are looked up: ``[root]`` if given, else the ``PLM_INTERP_MODELS`` dirs, then the package."""
    if root is not None:
        return [Path(root)]
    extra = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [*extra, PACKAGE_ROOT]


def list_models(root: str | Path | None = None) -> list[str]:
    """Names of the shipped models (each directory under a root counts, so a broken one fails loudly on load)."""
    names: set[str] = set()
    for r in roots(root):
        if r.is_dir():
            names |= {p.name for p in r.iterdir() if p.is_dir() and NAME_RE.match(p.name)}
    return sorted(names)


def model_dir(name: str, root: str | Path | None = None) -> Path:
    """The directory of model ``name``; ``ValueError`` listing the available names if there is none."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"model name {name!r} is not a valid name (letters, digits, '.', '_', '-')")
    for r in roots(root):
        if (r / name).is_dir():
            return r / name
    available = list_models(root)
    raise ValueError(f"no shipped model named {name!r}; available: {available or 'none'} "
                     f"(searched {[str(r) for r in roots(root)]})")


def card(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """The model's card (``card.json``) as a dict, checked for every required field."""
    path = model_dir(name, root) / CARD_JSON
    if not path.is_file():
        raise ValueError(f"{path}: file not found (a shipped model needs {list(MODEL_FILES)})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    check_card(data, source=str(path))
    return data


def model_card(name: str, root: str | Path | None = None) -> str:
    """The model's ``MODEL_CARD.md`` (Markdown)."""
    path = model_dir(name, root) / CARD_MD
    if not path.is_file():
        raise ValueError(f"{path}: file not found (a shipped model needs {list(MODEL_FILES)})")
    return path.read_text()


def load_pretrained(name: str, device: str | None = None, root: str | Path | None = None):
    """Load shipped model ``name`` as a :class:`~plm_interp.model.HookedPLM` in eval mode, with no network.

    The files are checked against the checksums the card records before anything is built, so a card can never
    describe weights other than the ones loaded. The task the model was trained on is ``model.cfg.task``, so
    ``analyses.nt_probe(load_pretrained("demo-rot"))`` needs no task argument.
    """
    directory = model_dir(name, root)
    meta = card(name, root)
    for fname, rec in meta["files"].items():
        path = directory / fname
        if not path.is_file():
            raise ValueError(f"{path}: file not found (listed in {directory / CARD_JSON})")
        if path.stat().st_size != rec["bytes"] or sha256_file(path) != rec["sha256"]:
            raise ValueError(f"{path}: does not match the size/checksum recorded in {directory / CARD_JSON} "
                             "(re-ship the model with ship_model)")
    return load_model(directory, device=device).eval()


def load_model_ref(ref: str | Path, device: str | None = None):
    """A model named the way commands take one: a checkpoint directory (``config.json`` + ``model.safetensors``,
    e.g. a run's ``final/``), else the name of a shipped model. Anything else raises, listing the shipped names."""
    from plm_interp.checkpoint import load_model

    if Path(ref).is_dir():
        return load_model(ref, device=device)
    if str(ref) in list_models():
        return load_pretrained(str(ref), device=device)
    raise ValueError(f"{str(ref)!r} is neither a checkpoint directory (config.json + model.safetensors) nor a "
                     f"shipped model; shipped: {list_models()}")
