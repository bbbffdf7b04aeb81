"""Checks of user-given settings, shared by every config of the project: the model config (``PLMConfig`` and each
positional scheme's settings), the training config, the CLI's ``[model]`` / ``[train]`` sections and ``--set``,
and an analysis's options (``plm-interp analyze``).

One module, so every refusal reads the same: a :class:`ConfigError` that names the key as the user wrote it
(``train.lr``, ``model.rotary_dim``, ``config field 'positional'``, ``analysis 'nt_probe' option seed``), the
value, and what would be accepted. It imports nothing of the project, so any module may use it.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A config field has a value the model (or run) cannot be built with; the message names the field."""


def init_fields(cls: type) -> dict[str, Any]:
    """The constructor fields of the dataclass ``cls`` and their annotations (resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def check_known(known: type | Iterable[str], data: dict[str, Any], section: str) -> None:
    """Refuse keys of ``data`` that are not in ``known`` (names, or the init fields of a dataclass), naming them
    as ``section.key`` and listing the known ones."""
    names = {f.name for f in dataclasses.fields(known) if f.init} if isinstance(known, type) else set(known)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) {[f'{section}.{k}' for k in unknown]}; known keys in [{section}]: "
                          f"{sorted(names)}")


def check_types(hints: type | dict[str, Any], data: dict[str, Any], section: str) -> dict[str, Any]:
    """Check each value of ``data`` against the annotation of the same-named field (``hints``: a dataclass or
    a class with ``__annotations__``, or a name -> annotation dict); keys without one pass unchecked.

    Returns the values converted where that is lossless: ints where floats are expected (TOML writes ``1``
    for ``1.0``), lists where tuples are expected (TOML and JSON have no tuples). Bools are never numbers.
    Raises :class:`ConfigError` naming ``section.key``, the value and the expected type.
    """
    hints = hints if isinstance(hints, dict) else typing.get_type_hints(hints)
    out = {}
    for name, value in data.items():
        if name not in hints:
            continue
        ok, converted = _conforms(value, hints[name])
        if not ok:
            raise ConfigError(f"{section}.{name} = {value!r} has the wrong type; expected {_type_name(hints[name])}")
        out[name] = converted
    return out


def check_choice(label: str, value: Any, allowed: Iterable[Any]) -> None:
    """Refuse ``value`` unless it is one of ``allowed``; ``label`` is the key as the user knows it
    (``"train.schedule"``, ``"config field 'act_fn'"``)."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{label} = {value!r} is not one of {allowed}")


def check_device_name(device: str, field: str = "train.device") -> None:
    """Refuse a string that names no torch device kind this project runs on (``'auto'`` passes)."""
    import torch

    if device == "auto":
        return
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError, TypeError):
        kind = None
    if kind not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{field} = {device!r} is not a device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


def check_device_available(device: str, field: str = "train.device") -> None:
    """Raise :class:`ConfigError` if ``device`` does not exist on this machine, naming it as ``field`` (the
    trainer's ``train.device``, a model's ``config field 'device'``, ``load_model``'s ``device``)."""
    import torch

    check_device_name(str(device), field)
    if device == "auto" or device == "cpu":
        return
    parsed = torch.device(device)
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{field} = {device!r} but CUDA is not available on this machine (torch "
                              f"{torch.__version__}, built for CUDA {torch.version.cuda}); use {field} = "
                              "'cpu'" + (" or 'auto'" if field == "train.device" else ""))
        if parsed.index is not None and parsed.index >= count:
            raise ConfigError(f"{field} = {device!r} but this machine has {count} CUDA device(s) "
                              f"(cuda:0 .. cuda:{count - 1})")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{field} = {device!r} but MPS is not available on this machine; use 'cpu'")


def _conforms(value: Any, hint: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, converted = _conforms(value, arg)
            if ok:
                return True, converted
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is Any:
        return True, value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint in (str, bool):
        return isinstance(value, hint), value
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False, value
        item_hints = args[:1] if origin is list or (len(args) == 2 and args[1] is Ellipsis) else args
        if origin is tuple and len(item_hints) > 1 and len(value) != len(item_hints):
            return False, value
        out = []
        for i, item in enumerate(value):
            ok, converted = _conforms(item, item_hints[min(i, len(item_hints) - 1)] if item_hints else Any)
            if not ok:
                return False, value
            out.append(converted)
        return True, origin(out)
    if origin is dict:
        return isinstance(value, dict), value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):  # a frozen spec given as its fields (JSON, --set):
        return True, value  # the receiver builds it and names a bad field
    return isinstance(value, hint) if isinstance(hint, type) else True, value


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is None and isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")
