"""A campaign's training state carried through the repository resumes exactly on another machine (carry.py)."""
from __future__ import annotations

import json
import shutil

import pytest
from train_helpers import small_config, source, state_equal, tiny_model

from plm_app.experiments.carry import pack, progress, train_runs, unpack
from plm_interp.training import Trainer

EXP = "part2_1_emergence"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/training/conftest.py


def _interrupted_first_stage(runs):
    """The first stage's run directory as a machine leaves it: checkpoints at 4 and 8, stopped at step 9."""
    run = train_runs(EXP, runs)[0]
    first = Trainer(tiny_model(), source(), small_config(max_steps=12, ckpt_every=4), run)
    first.total_steps = 9
    first.fit()
    shutil.rmtree(run / "checkpoints" / "step_00000009")  # "the machine went away" before the exit checkpoint
    (run / "config.json").write_text(json.dumps({"marker": 1}))
    return run


def test_a_carried_run_resumes_bit_identical_to_an_uninterrupted_one(tmp_path):
    straight = Trainer(tiny_model(), source(), small_config(max_steps=12))
    straight.fit()
    run = _interrupted_first_stage(tmp_path / "machine1")
    lines = pack(EXP, tmp_path / "machine1", tmp_path / "repo" / "carry")
    assert lines == [f"{run.name}: checkpoint of step 8"]
    carried = sorted(p.relative_to(tmp_path / "repo" / "carry").as_posix() for p in (tmp_path / "repo" / "carry").rglob("*")
                     if p.is_file())
    assert carried == ["carry.json", f"{run.name}/checkpoints/step_00000008/manifest.json",
                       f"{run.name}/checkpoints/step_00000008/state.pt", f"{run.name}/config.json",
                       f"{run.name}/metrics.jsonl"]  # only the newest checkpoint travels
    shutil.rmtree(tmp_path / "machine1")
    assert unpack(EXP, tmp_path / "machine2", tmp_path / "repo" / "carry") == [
        f"{run.name}: checkpoint step_00000008 restored"]
    run2 = train_runs(EXP, tmp_path / "machine2")[0]
    assert json.loads((run2 / "config.json").read_text()) == {"marker": 1}
    second = Trainer(tiny_model(seed=99), source(), small_config(max_steps=12, ckpt_every=4), run2)
    result = second.fit(resume=True)
    assert result.resumed_from == 8 and result.step == 12
    assert state_equal(second.model.state_dict(), straight.model.state_dict())


def test_unpack_never_goes_back_and_pack_replaces_the_previous_carry(tmp_path):
    run = _interrupted_first_stage(tmp_path / "m")
    pack(EXP, tmp_path / "m", tmp_path / "carry")
    (run / "final").mkdir()
    (run / "final" / "config.json").write_text("{}")
    assert progress(run) == (1, 0) > progress(tmp_path / "carry" / run.name) == (0, 8)
    assert "kept the run directory" in unpack(EXP, tmp_path / "m", tmp_path / "carry")[0]
    assert (run / "final" / "config.json").is_file()
    assert pack(EXP, tmp_path / "m", tmp_path / "carry") == [f"{run.name}: final model"]
    assert not (tmp_path / "carry" / run.name / "checkpoints").exists()
    assert not any(p.name.endswith((".tmp", ".old")) for p in tmp_path.iterdir())


def test_unpack_refuses_another_experiments_carry_and_a_damaged_checkpoint(tmp_path):
    _interrupted_first_stage(tmp_path / "m")
    pack(EXP, tmp_path / "m", tmp_path / "carry")
    with pytest.raises(ValueError, match="part2_1_depth_width"):
        unpack("part2_1_depth_width", tmp_path / "new", tmp_path / "carry")
    state = next((tmp_path / "carry").rglob("state.pt"))
    state.write_bytes(state.read_bytes()[:-10])
    with pytest.raises(ValueError, match="does not verify"):
        unpack(EXP, tmp_path / "new", tmp_path / "carry")
