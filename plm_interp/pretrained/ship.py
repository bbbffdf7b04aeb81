"""Shipping a trained model into the package: final weights (fp32), config, ``card.json`` and ``MODEL_CARD.md``.

Why a function and not a copy: the weights are re-read and verified (checksum, keys, shapes), the device is
reset to ``cpu`` (a model trained on a GPU must load on a laptop), the card's computed fields (task,
architecture, file sizes and checksums) come from the files themselves, and the whole directory appears at its
final name in one rename, so an interrupted ship never leaves a half-written model that ``load_pretrained``
would find.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from plm_interp.checkpoint import CONFIG, WEIGHTS, load_model, save_model
from plm_interp.io import atomic_write_bytes, atomic_write_json, sha256_file
from plm_interp.pretrained.card import (CARD_VERSION, architecture, check_card, check_given, render_markdown,
                                        task_summary)
from plm_interp.pretrained.store import CARD_JSON, CARD_MD, NAME_RE, PACKAGE_ROOT

#: the package must stay small: no shipped file may exceed this
MAX_FILE_BYTES = 8_000_000


def ship_model(run_or_model_dir: str | Path, name: str, card: dict[str, Any],
               dest_root: str | Path | None = None) -> Path:
    """Copy a trained model into ``dest_root/name/`` (default: the package's ``models/``) with its card.

    Args:
        run_or_model_dir: a run directory of ``plm-interp train`` (its ``final/`` is shipped and its
            ``config.json`` / ``metrics.jsonl`` fill ``training.seed``, ``steps``, ``tokens_seen`` and
            ``final_loss``), or a directory written by :func:`~plm_interp.checkpoint.save_model`.
        name: the name ``load_pretrained`` will know it by (``demo-rot``, ...).
        card: what only the trainer knows — ``training`` (``command``, ``seed``, ``steps``, ``tokens_seen``,
            ``wall_time_s``, ``machine``, any extra keys), ``figures`` (a list of ``{metric, value,
            paper_value (optional), command, note (optional)}``), and optional ``summary``, ``notes``,
            ``limitations``. Values given here override the ones read from the run directory.
        dest_root: where to put it (tests and staging use a temporary directory).

    Returns the model's directory. An existing model of the same name is replaced (atomically).
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"model name {name!r} is not a valid name (letters, digits, '.', '_', '-')")
    check_given(card)
    model_src, run_dir = _locate(Path(run_or_model_dir))
    training = {**_run_training_info(run_dir), **card.get("training", {})}
    model = _fp32_cpu(load_model(model_src, device="cpu"), name)
    if model.cfg.task is None:
        raise ValueError(f"{model_src}: the model records no task (cfg.task is None); a shipped model must carry "
                         "its task so analyses run on it with no task argument")

    dest_root = Path(PACKAGE_ROOT if dest_root is None else dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=dest_root))
    try:
        save_model(model, staging)
        files = {}
        for fname in (WEIGHTS, CONFIG):
            size = (staging / fname).stat().st_size
            if size > MAX_FILE_BYTES:
                raise ValueError(f"{fname} of model {name!r} is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte "
                                 "limit for files shipped in the package")
            files[fname] = {"bytes": size, "sha256": sha256_file(staging / fname)}
        full = {"card_version": CARD_VERSION, "name": name,
                "task": {"kind": model.cfg.task.get("kind"), "summary": task_summary(model.cfg.task),
                         "spec": model.cfg.task},
                "architecture": architecture(model.cfg, sum(p.numel() for p in model.parameters())),
                **{k: card[k] for k in ("summary", "notes", "limitations") if k in card},
                "training": training, "figures": card.get("figures"), "files": files}
        check_card(full, source=f"card of {name!r}")
        json.dumps(full)  # every value must be JSON (fail here, not half-way through a write)
        _check_round_trip(model, staging)
        atomic_write_json(staging / CARD_JSON, full)
        atomic_write_bytes(staging / CARD_MD, render_markdown(full).encode())
        _make_readable(staging)
        return _swap_into_place(staging, dest_root / name)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _locate(src: Path) -> tuple[Path, Path | None]:
    """``(model directory, run directory or None)`` for a run dir or a save_model dir."""
    if not src.is_dir():
        raise ValueError(f"{src}: no such directory (give a run directory or a save_model directory)")
    if _is_run_dir(src):
        final = src / "final"
        if not (final / CONFIG).is_file():
            raise ValueError(f"{src} is a run directory without a final model ({final / CONFIG} missing); "
                             "has training finished?")
        return final, src
    if not (src / CONFIG).is_file() or not (src / WEIGHTS).is_file():
        raise ValueError(f"{src}: neither a run directory (config.json with task/model/train and final/) nor a "
                         f"save_model directory ({WEIGHTS} + {CONFIG})")
    return src, (src.parent if _is_run_dir(src.parent) else None)


def _is_run_dir(path: Path) -> bool:
    try:
        meta = json.loads((path / CONFIG).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and {"task", "model", "train"} <= set(meta)


def _run_training_info(run_dir: Path | None) -> dict[str, Any]:
    """``seed`` from the run's config; ``steps``, ``tokens_seen``, ``final_loss`` from its last metrics line."""
    if run_dir is None:
        return {}
    info: dict[str, Any] = {}
    seed = json.loads((run_dir / CONFIG).read_text())["train"].get("seed")
    if seed is not None:
        info["seed"] = seed
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        last = None
        for line in metrics.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill; the ones before it are whole
            if "tokens" in rec and "step" in rec:
                last = rec
        if last is not None:
            info.update(steps=int(last["step"]), tokens_seen=int(last["tokens"]))
            if last.get("loss") is not None:
                info["final_loss"] = round(float(last["loss"]), 4)
    return info


def _fp32_cpu(model, name: str):
    """The model with float32 weights, ``device="cpu"`` and ``model_name=name`` in its config.

    fp32 because the shipped weights are the reference others compare against (a bf16 copy would shift every
    measured figure); cpu because the config's device is what ``load_model`` builds on.
    """
    from plm_interp.model import HookedPLM

    cfg = model.cfg.replace(dtype="float32", device="cpu", model_name=name)
    out = HookedPLM(cfg)
    out.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    return out.eval()


def _check_round_trip(model, directory: Path) -> None:
    loaded = load_model(directory, device="cpu")
    if loaded.cfg != model.cfg or any(not torch.equal(a, b) for a, b in
                                      zip(loaded.state_dict().values(), model.state_dict().values())):
        raise RuntimeError(f"{directory}: the written model does not read back identically")


def _make_readable(directory: Path) -> None:
    """0755 / 0644: temporary files and directories are created private, a package's data must not be."""
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)


def _swap_into_place(staging: Path, dest: Path) -> Path:
    """Rename ``staging`` onto ``dest``; an old ``dest`` is moved aside first and removed after."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / dest.name)
    os.replace(staging, dest)
    if old is not None:
        shutil.rmtree(old)
    return dest
