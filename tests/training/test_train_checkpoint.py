"""Training checkpoints: atomic layout, keep-last-k, damage detected and reported, RNG round trip."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from plm_interp.training import checkpointing as ckpt


def _state(step):
    return {"format_version": ckpt.FORMAT_VERSION, "step": step, "w": torch.full((64,), float(step))}


def _write(root, steps, keep=10):
    for s in steps:
        ckpt.save_checkpoint(root, s, _state(s), keep=keep)


def test_layout_and_newest_is_loaded(tmp_path):
    _write(tmp_path, [2, 4, 6])
    assert sorted(p.name for p in (tmp_path / "step_00000006").iterdir()) == ["manifest.json", "state.pt"]
    state, directory = ckpt.load_latest(tmp_path)
    assert state["step"] == 6 and directory.name == "step_00000006" and state["w"][0] == 6


def test_keep_last_k(tmp_path):
    _write(tmp_path, [1, 2, 3, 4, 5], keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [5, 4]


def test_no_checkpoint_means_none(tmp_path):
    assert ckpt.load_latest(tmp_path / "missing") is None


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip_byte])
def test_damaged_newest_is_reported_and_previous_used(tmp_path, damage):
    _write(tmp_path, [2, 4])
    damage(tmp_path / "step_00000004" / "state.pt")
    reports = []
    state, directory = ckpt.load_latest(tmp_path, report=reports.append)
    assert state["step"] == 2
    assert len(reports) == 1 and "step_00000004" in reports[0]
    assert "truncated" in reports[0] or "corrupted" in reports[0]


def test_incomplete_write_is_skipped_and_set_aside(tmp_path):
    _write(tmp_path, [2, 4])
    (tmp_path / "step_00000004" / "manifest.json").unlink()  # killed before the manifest
    (tmp_path / "step_00000006").mkdir()
    (tmp_path / "step_00000006" / ".state.pt.x.tmp").write_bytes(b"partial")  # killed mid-write
    reports = []
    state, _ = ckpt.load_latest(tmp_path, report=reports.append)
    assert state["step"] == 2 and all("incomplete" in r for r in reports)
    ckpt.set_aside_newer(tmp_path, 2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [2]


def test_damaged_checkpoint_is_renamed_not_deleted(tmp_path):
    _write(tmp_path, [2, 4])
    _flip_byte(tmp_path / "step_00000004" / "state.pt")
    ckpt.load_latest(tmp_path, report=lambda _: None)
    ckpt.set_aside_newer(tmp_path, 2)
    assert (tmp_path / "damaged_step_00000004" / "state.pt").is_file()


def test_all_damaged_raises_instead_of_starting_over(tmp_path):
    _write(tmp_path, [2])
    _truncate(tmp_path / "step_00000002" / "state.pt")
    with pytest.raises(ckpt.CheckpointError, match="step_00000002"):
        ckpt.load_latest(tmp_path, report=lambda _: None)


def test_bad_manifest_is_damage(tmp_path):
    _write(tmp_path, [2, 4])
    (tmp_path / "step_00000004" / "manifest.json").write_text("{not json")
    reports = []
    state, _ = ckpt.load_latest(tmp_path, report=reports.append)
    assert state["step"] == 2 and "manifest" in reports[0]


def test_rng_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    ckpt.save_checkpoint(tmp_path, 1, {**_state(1), "rng": ckpt.capture_rng()}, keep=1)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    state, _ = ckpt.load_latest(tmp_path)
    ckpt.restore_rng(state["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
