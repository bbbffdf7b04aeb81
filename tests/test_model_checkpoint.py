"""Checkpoints: bit-identical round trip, and every kind of damage is named."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from plm_interp import HookedPLM
from plm_interp.checkpoint import CheckpointError
from tests.conftest import tiny_model


def test_round_trip_gives_bit_identical_logits(scheme, tokens, tmp_path):
    model = tiny_model(scheme, task={"kind": "cfg", "grammar": "demo"})
    model.save_pretrained(tmp_path)
    loaded = HookedPLM.from_pretrained(tmp_path)
    assert loaded.cfg == model.cfg and loaded.cfg.task == {"kind": "cfg", "grammar": "demo"}
    assert torch.equal(loaded(tokens), model(tokens))
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def _rewrite_weights(path, edit):
    state = load_file(str(path / "model.safetensors"))
    edit(state)
    save_file(state, str(path / "model.safetensors"))
    meta = json.loads((path / "config.json").read_text())
    meta.pop("weights_sha256")  # pretend the damage came with a matching config
    (path / "config.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.pop("blocks.0.attn.W_V"), ["missing", "blocks.0.attn.W_V"]),
    (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), ["unexpected", "extra.weight"]),
    (lambda s: s.__setitem__("unembed.W_U", torch.zeros(3, 3)), ["unembed.W_U", "shape"]),
])
def test_key_and_shape_errors_name_the_key_and_file(tmp_path, edit, words):
    tiny_model("rot").save_pretrained(tmp_path)
    _rewrite_weights(tmp_path, edit)
    with pytest.raises(CheckpointError) as info:
        HookedPLM.from_pretrained(tmp_path)
    for word in words + ["model.safetensors"]:
        assert word in str(info.value)


def test_unknown_scheme_names_field_and_file(tmp_path):
    tiny_model("rot").save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["positional"] = "alibi"
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"config\.json.*positional.*alibi"):
        HookedPLM.from_pretrained(tmp_path)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_weights_file_is_detected(tmp_path, damage):
    tiny_model("rot").save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-10] ^= 0xFF  # inside a tensor: only the checksum can see it
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors.*(checksum|corrupt)"):
        HookedPLM.from_pretrained(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        HookedPLM.from_pretrained(tmp_path)
