"""Training checkpoints: write atomically, verify before loading, resume from the newest valid one.

Layout (one directory per checkpoint, under ``run_dir/checkpoints/``)::

    step_00001000/state.pt        weights, optimizer, scheduler, step, RNG states, data position
    step_00001000/manifest.json   {"step", "sha256", "bytes"}: written last, it vouches for state.pt

Both files go through :func:`plm_interp.io.atomic_path` (temp file, fsync, rename), so a kill at any moment
leaves either a complete checkpoint or a directory without a manifest ("incomplete": ignored and cleaned
up). A manifest whose checksum does not match ``state.pt`` means truncation or bit rot after the fact: that
checkpoint is reported and the previous valid one used. It is never loaded silently.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from plm_interp.io import atomic_write_json, atomic_writer, sha256_file

FORMAT_VERSION = 1
STATE, MANIFEST = "state.pt", "manifest.json"
_NAME = re.compile(r"^step_(\d{8,})$")


class CheckpointError(RuntimeError):
    """No usable checkpoint although some exist; the message lists each one and what is wrong with it."""


def checkpoint_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step_{step:08d}"


def save_checkpoint(root: str | Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``step`` (state first, manifest last), then keep the newest ``keep``."""
    directory = checkpoint_dir(Path(root), step)
    with atomic_writer(directory / STATE) as fh:  # a full disk says ENOSPC and the file, not "unexpected pos"
        torch.save(state, fh)
    path = directory / STATE
    atomic_write_json(directory / MANIFEST, {"format_version": FORMAT_VERSION, "step": step, "file": STATE,
                                             "bytes": path.stat().st_size, "sha256": sha256_file(path)})
    prune(root, keep)
    return directory


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """``(step, directory)`` of every checkpoint directory (complete or not), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def verify(directory: Path) -> str | None:
    """``None`` if the checkpoint is complete and intact, else why not (starting with ``incomplete`` when the
    manifest is missing, i.e. the writer was killed before it finished)."""
    manifest_path, state_path = directory / MANIFEST, directory / STATE
    if not manifest_path.is_file():
        return "incomplete: no manifest (the writer stopped before finishing)"
    try:
        manifest = json.loads(manifest_path.read_text())
        expected_bytes, expected_sha = int(manifest["bytes"]), str(manifest["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest {manifest_path} ({exc})"
    if not state_path.is_file():
        return f"{state_path} is missing"
    size = state_path.stat().st_size
    if size != expected_bytes:
        return f"{state_path} has {size} bytes, the manifest says {expected_bytes} (truncated)"
    if sha256_file(state_path) != expected_sha:
        return f"{state_path} checksum mismatch (corrupted)"
    return None


def load_latest(root: str | Path, report: Callable[[str], None] | None = None) -> tuple[dict, Path] | None:
    """The newest checkpoint that verifies and loads, as ``(state, directory)``; ``None`` if there is none.

    Each skipped checkpoint is reported through ``report`` (default: a warning). If checkpoints exist but
    every complete one is damaged, :class:`CheckpointError` is raised rather than silently starting over.
    """
    report = report or (lambda msg: warnings.warn(msg, stacklevel=3))
    damaged = []
    for step, directory in list_checkpoints(root):
        problem = verify(directory)
        if problem is None:
            try:
                state = torch.load(directory / STATE, map_location="cpu", weights_only=True)
                if state.get("format_version") != FORMAT_VERSION or state.get("step") != step:
                    raise ValueError("format_version/step fields do not match the manifest")
                return state, directory
            except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not usable"
                problem = f"{directory / STATE} does not load ({exc})"
        if not problem.startswith("incomplete"):
            damaged.append(f"{directory.name}: {problem}")
        report(f"checkpoint {directory} skipped: {problem}; trying the previous one")
    if damaged:
        raise CheckpointError(f"no valid checkpoint under {root}; damaged: {damaged}. Move them away to "
                              "start from scratch.")
    return None


def prune(root: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints, and incomplete ones older than those.

    "Complete" means the manifest exists; checksums are not recomputed here (that happens on load).
    """
    complete = 0
    for _, directory in list_checkpoints(root):
        if (directory / MANIFEST).is_file():
            if complete < keep:
                complete += 1
                continue
            shutil.rmtree(directory, ignore_errors=True)
        elif complete:  # an incomplete write older than a complete checkpoint: a leftover
            shutil.rmtree(directory, ignore_errors=True)


def set_aside_newer(root: str | Path, step: int) -> list[Path]:
    """Move checkpoints after ``step`` out of the way before training past it again.

    Incomplete ones are deleted; damaged ones are renamed ``damaged_step_*`` (kept for inspection, no longer
    candidates for resume). Returns the renamed directories.
    """
    moved = []
    for s, directory in list_checkpoints(root):
        if s <= step:
            continue
        if (directory / MANIFEST).is_file():
            target = directory.with_name(f"damaged_{directory.name}")
            shutil.rmtree(target, ignore_errors=True)
            directory.rename(target)
            moved.append(target)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return moved


# -- RNG state: stored as tensors and plain values so torch.load(weights_only=True) can read it back ----------

def capture_rng() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
            "python": _to_lists(random.getstate())}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuples(state["python"]))


def _to_lists(obj):
    return [_to_lists(x) for x in obj] if isinstance(obj, tuple) else obj


def _to_tuples(obj):
    return tuple(_to_tuples(x) for x in obj) if isinstance(obj, list) else obj
