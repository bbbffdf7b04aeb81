"""The iGSM name hierarchy: which category names sit above which, and the item names inside each category.

The data is the authors' English hierarchy (``categories.json``, MIT, see ``NOTICE.md``). A problem picks one of
the four hierarchies, ``d`` consecutive categories of it (one per structure layer), and for each layer one
sub-category from which it draws its distinct item names, exactly as the authors' ``Data`` does.

``names="all"`` (the default) keeps all 1,553 names, as the authors do: "Sainsbury's", "Shop 'n Save",
"Food 4 Less", "Track and Field", and "Popcorn", which is both a Product and an Ingredient. They stay readable
because a reader knows the names: see :mod:`tasks.igsm.reader`. ``names="parseable"`` leaves out the 54 names
with an apostrophe, a template word ("and", "of", "the", "The") or an all-digit word; models trained before the
option existed were trained on that set, and their task specs keep it (``IGSMTask.from_spec``).
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: words the problem/solution templates use; item names may not contain them (see module docstring)
TEMPLATE_WORDS = frozenset(
    "The number of each equals more than times as much the sum difference and How many does have Define so".split()
)
DATA_PATH = Path(__file__).with_name("categories.json")
NAME_SETS = ("all", "parseable")
#: the word splitter shared with the tokenizer: spaces separate words; ". , ; ?", "'s" and "'n" are words
WORD_RE = re.compile(r"[^\s.,;?']+|'s|'n|[.,;?]|\S")


def _usable(name: str) -> bool:
    return "'" not in name and not any(w in TEMPLATE_WORDS or w.isdigit() for w in name.split(" "))


@dataclass(frozen=True)
class Hierarchy:
    """``hierarchies[h]`` lists category names top layer first; ``items[category]`` lists sub-categories of names."""

    hierarchies: tuple[tuple[str, ...], ...]
    items: dict[str, tuple[tuple[str, ...], ...]]

    @property
    def words(self) -> list[str]:
        """Every word any category or item name can contribute to a text, sorted (the tokenizer's name words)."""
        ws = {w for h in self.hierarchies for c in h for w in WORD_RE.findall(c)}
        ws |= {w for subs in self.items.values() for sub in subs for n in sub for w in WORD_RE.findall(n)}
        return sorted(ws)

    def sample_layers(self, rng: random.Random, sizes: list[int]) -> tuple[list[str], list[list[str]]]:
        """Pick a hierarchy, ``len(sizes)`` consecutive categories, and ``sizes[i]`` distinct items per layer.

        Returns ``(category_names, item_names_per_layer)``. Item names are distinct within the whole problem.
        """
        d = len(sizes)
        h = self.hierarchies[rng.randrange(len(self.hierarchies))]
        if d > len(h):
            raise ValueError(f"structure depth d={d} exceeds the hierarchy depth {len(h)}")
        top = rng.randrange(len(h) - d + 1)
        cats = list(h[top : top + d])
        layers: list[list[str]] = []
        for cat, n in zip(cats, sizes):
            subs = self.items[cat]
            pool = subs[rng.randrange(len(subs))]
            if len(pool) < n:  # a sub-category the "parseable" filter shrank: fall back to the whole category
                pool = sorted({x for sub in subs for x in sub})
            layers.append(rng.sample(pool, n))  # distinct within a layer; "Popcorn" may sit in two layers
        return cats, layers


def load_hierarchy(path: str | Path | None = None, names: str = "all") -> Hierarchy:
    """Load a hierarchy file in the ``categories.json`` format with all its names or the ``"parseable"`` ones."""
    if names not in NAME_SETS:
        raise ValueError(f"load_hierarchy field 'names' = {names!r}: must be one of {NAME_SETS}")
    return _load(str(path or DATA_PATH), names == "all")


@lru_cache(maxsize=8)
def _load(path: str, keep_all: bool = False) -> Hierarchy:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    hier = tuple(tuple(h) for h in raw.get("hierarchies", []))
    if not hier or not all(hier):
        raise ValueError(f"hierarchy file {path!r}: field 'hierarchies' is empty")
    items: dict[str, tuple[tuple[str, ...], ...]] = {}
    for h in hier:
        for cat in h:
            subs = raw.get("categories", {}).get(cat)
            if not subs:
                raise ValueError(f"hierarchy file {path!r}: category {cat!r} has no sub-categories")
            kept = tuple(tuple(n for n in names if keep_all or _usable(n)) for names in subs.values())
            kept = tuple(s for s in kept if s)
            if sum(len(s) for s in kept) < 8:
                raise ValueError(f"hierarchy file {path!r}: category {cat!r} has fewer than 8 usable item names")
            items[cat] = kept
    return Hierarchy(hier, items)
