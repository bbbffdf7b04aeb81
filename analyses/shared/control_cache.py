"""The random-init control's records, kept on disk under a key made of everything they are a function of.

Why: the paper's control (the same probe on a random-init model of the same architecture) does not depend on the
trained weights. It is a fixed function of the control's own weights, the probe data, the analysis's arguments and
the code that fits and scores it; yet it costs as much as the trained model's probes, often more (on demo-rot the
control's full NT probes creep for 400-550 L-BFGS iterations). A researcher calls the same probe on many
checkpoints of one architecture (a training curve, a notebook cell run again), so the control is fitted once and
read back after that.

The key hashes the control model's config and state dict (every tensor's bytes), the exact inputs the analysis passes (data
tensors, example lists, its settings), the source of every ``.py`` file of ``plm_interp``, ``tasks`` and
``analyses`` (any code change refits), and the torch version. A hit returns the records the fit wrote; a miss, an
unreadable file or ``PLM_CONTROL_CACHE=off`` fits. Fresh records go through the same JSON round trip as cached
ones, so both paths return equal objects. Files live in ``$PLM_CACHE_DIR/controls`` (default
``~/.cache/plm_interp/controls``), written atomically.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

#: the packages whose source is part of every key (a change in any of them refits the control)
_PACKAGES = ("plm_interp", "tasks", "analyses")


def cache_dir() -> Path:
    """Where control records are kept: ``$PLM_CACHE_DIR/controls``, default ``~/.cache/plm_interp/controls``."""
    root = os.environ.get("PLM_CACHE_DIR") or Path.home() / ".cache" / "plm_interp"
    return Path(root) / "controls"


def enabled() -> bool:
    """False when ``PLM_CONTROL_CACHE`` is ``off``, ``0`` or ``false``: every call then fits its control."""
    return os.environ.get("PLM_CONTROL_CACHE", "on").strip().lower() not in ("off", "0", "false", "no")


@functools.cache
def code_version() -> str:
    """sha256 of the source of every ``.py`` file of the library, task and analysis packages (path and bytes)."""
    import importlib

    h = hashlib.sha256()
    for name in _PACKAGES:
        root = Path(importlib.import_module(name).__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root.parent)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _feed(h, value: Any) -> None:
    """Hash ``value`` by content and structure: tensors by dtype, shape and bytes; containers element-wise."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, torch.nn.Module):
        _feed(h, value.state_dict())
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=str):
            _feed(h, str(k))
            _feed(h, value[k])
        h.update(b"}")
    elif isinstance(value, list) and value and all(type(v) is int for v in value):  # token ids: one block
        h.update(b"I")
        h.update(torch.tensor(value, dtype=torch.int64).numpy().tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(value, (str, int, float, bool)) or value is None:
        h.update(repr((type(value).__name__, value)).encode())
    elif hasattr(value, "__dict__"):  # a dataclass of inputs (VExamples, ...): its fields
        h.update(type(value).__name__.encode())
        _feed(h, vars(value))
    else:
        raise TypeError(f"cannot key a control on a {type(value).__name__}")


def control_key(analysis: str, control: torch.nn.Module, inputs: Any) -> str:
    """The key of ``analysis``'s records on ``control`` for ``inputs`` (module doc: what goes in)."""
    h = hashlib.sha256()
    cfg = getattr(control, "cfg", None)  # settings that are no weight (positional scheme, activation, ...)
    cfg = json.dumps(cfg.to_dict(), sort_keys=True, default=str) if hasattr(cfg, "to_dict") else repr(cfg)
    _feed(h, [analysis, torch.__version__, code_version(), cfg, control, inputs])
    return h.hexdigest()


def cached_records(analysis: str, control: torch.nn.Module, inputs: Any,
                   compute: Callable[[], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], str]:
    """``(records, how)``: the control's records for ``inputs``, read back (``how="cached"``) or computed by
    ``compute()`` and kept (``how="fitted"``)."""
    if not enabled():
        return json.loads(json.dumps(compute())), "fitted"
    key = control_key(analysis, control, inputs)
    path = cache_dir() / f"{analysis}-{key[:32]}.json"
    try:
        stored = json.loads(path.read_text())
        if stored.get("key") == key and isinstance(stored.get("records"), list):
            return stored["records"], "cached"
    except (OSError, ValueError):
        pass  # absent or unreadable: fit
    records = json.loads(json.dumps(compute()))
    _write_atomic(path, {"key": key, "analysis": analysis, "records": records})
    return records, "fitted"


def subject_records(analysis: str, name: str, subject: torch.nn.Module, inputs: Any,
                    compute: Callable[[], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], str | None]:
    """One subject's records in a probe analysis: the trained model's are computed (``how`` None), the random-init
    control's go through :func:`cached_records` (``how``: ``"fitted"`` or ``"cached"``)."""
    if name == "trained":
        return compute(), None
    return cached_records(analysis, subject, inputs, compute)


def _write_atomic(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
