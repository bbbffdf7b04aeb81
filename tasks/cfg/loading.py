"""Where grammars come from: the built-ins by name, grammar files (the authors' JSON layout or the text format), a
:class:`Grammar` or its dict. ``CFGTask(grammar=...)`` accepts all of them through :func:`resolve`.

Kept apart from ``grammar.py`` (the data structure) and ``textformat.py`` (reading text), which both sit below it.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from tasks.cfg.grammar import Grammar, GrammarError, from_authors_json
from tasks.cfg.textformat import parse_text

BUILTIN_DIR = Path(__file__).parent / "grammars"
#: the paper's nine grammars (the authors' files) and the small ``demo`` grammar
BUILTINS = ("cfg3b", "cfg3i", "cfg3h", "cfg3g", "cfg3f", "cfg3e1", "cfg3e2", "cfg3j", "cfg3k", "demo")

#: built-ins the authors shipped with NTs that no rule reaches (loaded with ``allow_unreachable``)
_UNREACHABLE_BUILTINS = ("cfg3e1",)


def load(path: str | Path, allow_unreachable: bool | None = None) -> Grammar:
    """Load a grammar file: ``.json`` in the authors' layout, anything else in the text format.

    ``allow_unreachable`` (default: what the file declares, else strict) applies to the authors' JSON layout; the
    text format declares it in the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"grammar file {str(path)!r} does not exist")
    if not path.is_file():
        raise GrammarError(f"grammar file {str(path)!r} is a directory, not a grammar file; give a built-in name "
                           f"{list(BUILTINS)} or a grammar file")
    try:
        text = path.read_bytes().decode("utf-8")
        if path.suffix == ".json":
            d = json.loads(text)
    except ValueError as exc:  # not UTF-8, or not JSON
        raise GrammarError(f"grammar file {str(path)!r} does not read ({exc})") from None
    if path.suffix == ".json":
        return from_authors_json(d, name=d.get("name") or path.stem, allow_unreachable=allow_unreachable)
    return parse_text(text, default_name=path.stem)


@lru_cache(maxsize=None)
def load_builtin(name: str) -> Grammar:
    """One of :data:`BUILTINS` by name (the paper's nine grammars and ``"demo"``); each file is read once per
    process (a :class:`Grammar` is frozen, so every caller can share it; ``CFGTask.spec()`` asks often)."""
    if name not in BUILTINS:
        raise GrammarError(f"grammar name {name!r} is not a built-in; known: {list(BUILTINS)}")
    if name == "demo":
        return load(BUILTIN_DIR / "demo.txt")
    return load(BUILTIN_DIR / f"{name}.json", allow_unreachable=name in _UNREACHABLE_BUILTINS or None)


def resolve(grammar: "str | Grammar | dict") -> Grammar:
    """Accept a built-in name, a path to a grammar file, a :class:`Grammar` or its :meth:`Grammar.to_dict`."""
    if isinstance(grammar, Grammar):
        return grammar
    if isinstance(grammar, dict):
        return Grammar.from_dict(grammar)
    if isinstance(grammar, (str, Path)):
        if not str(grammar).strip():  # Path("") is the current directory
            raise GrammarError(f"grammar {str(grammar)!r} is empty; give a built-in name {list(BUILTINS)} or a file")
        if str(grammar) in BUILTINS:
            return load_builtin(str(grammar))
        if Path(grammar).exists():
            return load(grammar)
        raise GrammarError(f"grammar {str(grammar)!r} is neither a built-in {list(BUILTINS)} nor an existing file")
    raise GrammarError(f"grammar must be a name, path, Grammar or dict; got {type(grammar).__name__}")
