"""The one ``--set KEY=VALUE`` parser of every subcommand (``train``, ``analyze``, ...).

Why one: ``train`` read values as TOML while ``analyze`` read them as JSON, so ``--set x=true`` and
``--set x=[1, 2]`` meant different things depending on the subcommand. Values are TOML (``1e-3``, ``true``,
``[0.9, 0.95]``, ``"x"``); a bare word that is not valid TOML is kept as a string (``--set task.grammar=cfg3f``),
so a wrong *type* is caught later, by the consumer's own type check, with the key and the value named.
"""
from __future__ import annotations

import tomllib
from typing import Any

from plm_interp.config import ConfigError


def parse_value(raw: str) -> Any:
    """A ``--set`` value: TOML when it parses, else the stripped text itself."""
    try:
        return tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()


def parse_assignment(item: str, example: str = "key=value") -> tuple[str, Any]:
    """``"lr=1e-3"`` -> ``("lr", 0.001)``; a missing ``=`` or empty key is refused, naming the item."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected {example}")
    return key.strip(), parse_value(raw)


def parse_assignments(items: list[str], example: str = "key=value") -> dict[str, Any]:
    """Several ``--set`` items as one dict (a later item wins)."""
    return dict(parse_assignment(item, example) for item in items)
