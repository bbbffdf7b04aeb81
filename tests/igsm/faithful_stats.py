"""Per-problem statistics read from the *text* alone, so the authors' sample and ours are measured the same way."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).with_name("data") / "authors_sample.jsonl"
CATEGORIES = Path(__file__).parents[2] / "tasks" / "igsm" / "categories.json"
KINDS = ("const", "one", "const+one", "sum2", "diff2", "sum3+", "const+sum2", "const+diff2", "const+sum3+")


@lru_cache(maxsize=1)
def lexicon():
    raw = json.loads(CATEGORIES.read_text(encoding="utf-8"))
    cats = {c for h in raw["hierarchies"] for c in h}
    item_cats: dict[str, set[str]] = {}
    for c, subs in raw["categories"].items():
        for names in subs.values():
            for n in names:
                item_cats.setdefault(n, set()).add(c)
    words = sorted(set(item_cats) | cats, key=len, reverse=True)
    return cats, item_cats, re.compile("|".join(re.escape(w) for w in words))


def authors(preset: str) -> list[dict]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r["preset"] == preset]


def sentence_kind(rhs: str) -> str:
    const = ""
    m = re.match(r"(\d+) (more than|times as much as) (.*)", rhs)
    if m:
        const, rhs = "const+", m.group(3)
    elif re.fullmatch(r"\d+", rhs):
        return "const"
    if rhs.startswith("the difference of "):
        return const + "diff2"
    if rhs.startswith("the sum of "):
        return const + ("sum3+" if ", each " in rhs else "sum2")
    return const + "one"


def stats(problem: str, solution: str, answer: int, op: int) -> dict:
    cats, item_cats, names = lexicon()
    problem, solution = problem.strip(), solution.strip()
    sents = re.split(r"(?<=[.?]) ", problem)
    body = [s for s in sents if s.startswith("The number of each ")]
    question = next(s for s in sents if s.startswith("How many "))
    steps = [s for s in re.split(r"(?<=\.) (?=Define )", solution) if s]
    zero_total = any(re.fullmatch(r"Define .*'s (%s) as \w; so \w = 0\." % "|".join(cats), s) for s in steps)
    asked = re.fullmatch(r"How many (.*) does (.*) have\?", question).group(1)
    found = set(names.findall(problem))
    layer_cats = {c for n in found for c in ({n} if n in cats else item_cats[n]) if len(item_cats.get(n, ())) < 2}
    return {"op": op, "sentences": len(body), "steps": len(steps), "zero_total": zero_total,
            "asks_category": asked in cats, "zero_answer": answer == 0,
            "kinds": [sentence_kind(s.split(" equals ", 1)[1].rstrip(".")) for s in body],
            "levels": len(layer_cats)}
