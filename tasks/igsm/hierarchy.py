"""The iGSM name hierarchy: which category names sit above which, and the item names inside each category.

The data is the authors' English hierarchy (``categories.json``, MIT, see ``NOTICE.md``). A problem picks one of
the four hierarchies, ``d`` consecutive categories of it (one per structure layer), and for each layer one
sub-category from which it draws its distinct item names, exactly as the paper describes.

A few item names are left out so that the text stays unambiguous for a word-level parser: names with an
apostrophe (they would collide with the possessive ``'s``), names containing a template word ("and", "of",
"the", "The", ...) and names with a word made only of digits (it would read as a number). This drops 54 of the
1,553 names; every category keeps at least 56.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: words the problem/solution templates use; item names may not contain them (see module docstring)
TEMPLATE_WORDS = frozenset(
    "The number of each equals more than times as much the sum difference and How many does have Define so".split()
)
DATA_PATH = Path(__file__).with_name("categories.json")


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
        ws = {w for h in self.hierarchies for c in h for w in c.split(" ")}
        ws |= {w for subs in self.items.values() for sub in subs for n in sub for w in n.split(" ")}
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
        used: set[str] = set(cats)
        layers: list[list[str]] = []
        for cat, n in zip(cats, sizes):
            subs = self.items[cat]
            pool = [x for x in subs[rng.randrange(len(subs))] if x not in used]
            if len(pool) < n:  # tiny sub-category: fall back to the whole category
                pool = [x for sub in subs for x in sub if x not in used]
            names = rng.sample(pool, n)
            used.update(names)
            layers.append(names)
        return cats, layers


def load_hierarchy(path: str | Path | None = None) -> Hierarchy:
    """Load (and filter, see module docstring) a hierarchy file in the ``categories.json`` format."""
    return _load(str(path or DATA_PATH))


@lru_cache(maxsize=4)
def _load(path: str) -> Hierarchy:
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
            kept = tuple(tuple(n for n in names if _usable(n)) for names in subs.values())
            kept = tuple(s for s in kept if s)
            if sum(len(s) for s in kept) < 8:
                raise ValueError(f"hierarchy file {path!r}: category {cat!r} has fewer than 8 usable item names")
            items[cat] = kept
    return Hierarchy(hier, items)
