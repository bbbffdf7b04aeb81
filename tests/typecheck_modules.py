"""Which modules the runtime type checks cover (tests/conftest.py installs the hook over these)."""
from __future__ import annotations

from pathlib import Path

#: modules whose classes check their own input and name the bad field in the message (config dataclasses): a
#: type checker in front of them would answer first, with a generic message, so they are left out
SELF_VALIDATING = ("plm_interp.config", "plm_interp.model.config", "plm_interp.training.config",
                   "plm_interp.training.lora_config")
#: deprecated aliases of modules checked under their own names (``plm_interp.app`` is ``plm_app``)
ALIASES = ("plm_interp.app",)


def typechecked_modules() -> list[str]:
    """Every module of the four packages except :data:`SELF_VALIDATING` and :data:`ALIASES` (the hook matches name prefixes, so
    the list names modules one by one)."""
    root = Path(__file__).parents[1]
    out = []
    for package in ("plm_interp", "tasks", "analyses", "plm_app"):
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            # a listed package would cover its submodules too: the packages above a left-out module (which
            # only re-export) are left out as well
            if not any(m == name or m.startswith(name + ".") for m in SELF_VALIDATING) and name not in ALIASES:
                out.append(name)
    return out
