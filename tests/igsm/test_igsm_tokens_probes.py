"""Tokenizer round trip and vocabulary; probe labels and positions recomputed independently."""
import json
import random
from pathlib import Path

import numpy as np
import pytest

import tasks.igsm as ig
from tasks.igsm import PRESETS, generate, get_tokenizer, labels_along, probe_suffix, true_labels
from tasks.igsm.sequence import encode
from tasks.igsm.tokenizer import SPECIALS, build_vocab


def test_round_trip_and_unknown_words():
    tok = get_tokenizer(23)
    rng = random.Random(0)
    for preset in ("small", "med", "hard"):
        for _ in range(30):
            p = generate(PRESETS[preset], rng)
            assert tok.decode(tok.encode(p.text)) == p.text
    with pytest.raises(ValueError, match="Zorblax"):
        tok.encode("The number of Zorblax equals 3.")
    for w in ("22", "a", "Z", "[BACK]", "[START]", "[MID]", "[END]", "<PAD>"):
        assert w in tok.ids
    assert "23" not in tok.ids and tok.pad == 0


def test_saved_vocabulary_is_the_built_one():
    saved = json.loads((Path(ig.__file__).parent / "vocab_23.json").read_text())
    assert saved["tokens"] == build_vocab(23) and saved["tokens"][: len(SPECIALS)] == list(SPECIALS)
    assert len(get_tokenizer(7)) == len(build_vocab(7))


def _brute_labels(p, order):
    """known/can_next by direct set reasoning over the graph's parent lists."""
    g = p.graph
    params = sorted(g.topo)
    rows = []
    known = set()
    for t in range(len(order) + 1):
        if t:
            known.add(order[t - 1])
        can = {a for a in params if a not in known and set(g.parents(a)) <= known}
        rows.append((set(known), can))
    return params, rows


def test_true_labels():
    tok = get_tokenizer(23)
    rng = random.Random(4)
    for _ in range(20):
        p = generate(PRESETS["med"], rng)
        L = true_labels(p, tok)
        e = encode(p, tok)
        params, rows = _brute_labels(p, [s.param for s in p.steps])
        for t, (known, can) in enumerate(rows):
            assert {params[i] for i in np.flatnonzero(L.known[t])} == known
            assert {params[i] for i in np.flatnonzero(L.can_next[t])} == can
            assert {params[i] for i in np.flatnonzero(L.nece_next[t])} == can & set(p.necessary)
            for a in known:
                assert L.value[t, params.index(a)] == p.graph.values[a]
        # dep is transitive closure, nece = ancestors of the query
        q = params.index(p.query)
        assert {params[i] for i in np.flatnonzero(L.dep[q])} | {p.query} == set(p.necessary)
        assert {params[i] for i in np.flatnonzero(L.nece)} == set(p.necessary)
        words = [tok.vocab[i] for i in e.ids]
        assert words[L.pos_nece] == "?" and words[L.pos_dep] == "." and words[L.pos_dep + 1] == "How"
        assert words[L.pos_steps[0]] == "<SOL>" and all(words[i] == "." for i in L.pos_steps[1:])
        assert len(L.pos_steps) == len(p.steps) + 1


def test_labels_along_a_model_solution_stop_at_first_error():
    tok = get_tokenizer(23)
    p = generate(PRESETS["med"].with_(op=8), random.Random(1))
    e = encode(p, tok)
    sents = p.solution_sentences()
    n = p.structure.names
    bad = sents[:2] + [f"Define {n[0][0]}'s {n[0][1]} as z; so z = 1"] + sents[2:]
    model = tok.encode(". ".join(bad) + ".")
    ids = e.ids[: e.sol + 1] + model
    L = labels_along(p, tok, ids)
    assert L.known.shape[0] == 3 and len(L.pos_steps) == 3
    assert L.known[2].sum() == 2
    words = [tok.vocab[i] for i in ids]
    assert all(words[i] == "." for i in L.pos_steps[1:])


def test_probe_suffix():
    tok = get_tokenizer(23)
    p = generate(PRESETS["small"], random.Random(0))
    a, b = p.necessary[0], p.query
    ids = probe_suffix(p, tok, a, b)
    assert tok.decode(ids) == f"[START] {p.structure.param_name(a)} [MID] {p.structure.param_name(b)} [END]"
