"""The authors' train/test split (their sketch hash, tests/igsm/data/authors_hashes.jsonl from their code) and our
default one."""
import json
import random
import re
from collections import Counter
from pathlib import Path

from tasks.igsm import PRESETS, generate, read
from tasks.igsm.authors_split import authors_bucket, sketch

DATA = Path(__file__).with_name("data") / "authors_hashes.jsonl"


def _rows():
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def _sentences(solution):
    return [s[:-1] for s in re.split(r"(?<=\.) (?=Define )", solution.strip())]


def test_authors_bucket_equals_their_hash():
    rows = _rows()
    hits = sum(authors_bucket(read(r["problem"]).structure, _sentences(r["solution"])) == r["hash"] for r in rows)
    # their sketch replaces names in their hidden item order; when one name ends another ("Prairie" / "Tallgrass
    # Prairie") in one problem, the order the text cannot show decides the sketch: 10 of these 400
    assert hits >= 390, hits


def test_sketch_by_hand():
    p = read("The number of each Walmart's Popcorn equals 5. The number of each Walmart's Bread equals 3 more "
             "than each Walmart's Popcorn. How many Product does Walmart have?")
    sents = [s[:-1] for s in re.split(r"(?<=\.) (?=Define )", p.solution_text)]
    # letters renamed by first appearance, numbers 1..22 -> 0, names -> Inst / Inter, ";" -> "."
    assert sketch(p.structure, sents) == (
        " Define Inst as a. so a = 0. Define Inst as b. so b = 0 + a = 0 + 0 = 0. "
        "Define Inter as c. so c = a + b = 0 + 0 = 0.") or sketch(p.structure, sents) == (
        " Define Inst as a. so a = 0. Define Inst as b. so b = 0 + a = 0 + 0 = 0. "
        "Define Inter as c. so c = b + a = 0 + 0 = 0.")


def test_authors_split_option():
    cfg = PRESETS["med"].with_(template_hash="authors", train_buckets=16)
    rng = random.Random(4)
    train = [generate(cfg, rng) for _ in range(60)]
    test = [generate(cfg.with_(split="test"), rng) for _ in range(60)]
    for p, want in [(p, "train") for p in train] + [(p, "test") for p in test]:
        b = authors_bucket(p.structure, p.solution_sentences())
        assert p.bucket == b and p.split == want and (b < 16) == (want == "train")
    # their sketch drops layers: every constant-only op=1 problem has one template, so one bucket
    ones = [generate(PRESETS["med"].with_(template_hash="authors", split="all", op=1), rng) for _ in range(80)]
    consts = Counter(p.bucket for p in ones
                     if p.query[0] == 0 and re.fullmatch(r"Define .* as \w; so \w = \d+\.", p.solution_text))
    assert len(consts) == 1 and sum(consts.values()) > 10
    ours = [generate(PRESETS["med"].with_(split="all", op=1), rng) for _ in range(80)]
    assert len({p.bucket for p in ours}) > 3
