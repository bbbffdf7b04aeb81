"""part2_1_emergence's checkpoint analyses: which checkpoints are picked, where a probe "appears", and the whole
path from a run's checkpoints to committed summaries, a table and a plot (tiny model, tiny options)."""
import json
import shutil

import pytest
import torch

from plm_interp import HookedPLM, preset_config
from plm_app.experiments import emergence as E
from plm_interp.training.checkpointing import save_checkpoint
from tasks.igsm import IGSMTask


def test_pick_takes_the_nearest_checkpoint_in_log_tokens_once_each():
    avail = [(t, f"c{t}", "run") for t in (10, 15, 31, 33, 64, 200)]
    picked = E.pick(avail, points=(16, 32, 64, 128), tolerance=0.15)
    # 128 has no checkpoint within 0.15 octave (64 and 200 are 1 and 0.64 octaves away)
    assert [(target, tokens) for target, tokens, *_ in picked] == [(16, 15), (32, 33), (64, 64)]
    assert E.TOKEN_POINTS[0] == 16_000_000 and E.TOKEN_POINTS[-1] == 639_000_000


def test_a_probe_appears_where_its_interval_clears_both_majority_and_control():
    def point(tokens, acc):
        return {"tokens": tokens, "nece": {"acc": acc, "majority": 0.80, "n": 1000}}
    control = {"nece": {"acc": 0.79}}
    # 0.82 at n = 1000 has a 95% interval reaching below 0.80; 0.85's lower end (~0.827) clears both
    assert E.first_beating([point(3, 0.85), point(1, 0.80), point(2, 0.82)], control, "nece") == 3
    assert E.first_beating([point(1, 0.80)], control, "nece") is None


def _fake_run(runs, task, steps, final_task=None):
    """Stage 1's run with checkpoints at ``steps`` on ``task``; with ``final_task`` also the last stage's run
    config (started, no checkpoint yet), whose task is the one every point is probed on."""
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=192, positional="rot", seed=0,
                                    task=task.spec()))
    cfg = model.cfg.to_dict()
    cfg.pop("task")
    for stage, t in ((E.STAGES[0], task), (E.STAGES[-1], final_task)):
        if t is not None:
            (runs / f"{stage}-s0").mkdir(parents=True)
            (runs / f"{stage}-s0" / "config.json").write_text(json.dumps(
                {"model": cfg, "task": t.spec(), "train": {"batch_size": 2, "max_steps": 10, "n_ctx": 192}}))
    run = runs / f"{E.STAGES[0]}-s0"
    for step in steps:
        with torch.no_grad():
            model.W_E.add_(0.01)   # a different model at each checkpoint
        save_checkpoint(run / "checkpoints", step, {"format_version": 1, "step": step, "model": model.state_dict()},
                        keep=10)
    return run


def test_checkpoints_are_summarised_once_and_drawn_from_the_summaries(tmp_path):
    task, final = IGSMTask("tiny", op=1, letter_order="random"), IGSMTask("tiny", letter_order="sequential")
    tokens_per_step = 2 * 192
    steps = [round(t / tokens_per_step) for t in (16_000_000, 22_627_416)]
    _fake_run(tmp_path / "runs", task, steps)
    # before the last stage starts, its task (the probes' task) is unknown: nothing is measured on the wrong one
    assert E.analyse(tmp_path / "runs", tmp_path / "results", progress=False, report=lambda m: None) == []
    _fake_run(tmp_path / "runs2", task, steps, final_task=final)
    (tmp_path / "runs").rename(tmp_path / "runs_before")
    (tmp_path / "runs2").rename(tmp_path / "runs")
    found = E.checkpoints(tmp_path / "runs")
    assert [t for t, *_ in found] == [s * tokens_per_step for s in steps]
    tiny = {"reasoning_level": {"n": 2, "sets": ["in", "op=4"], "max_new_tokens": 8},
            "v_probe": {"n_train": 4, "n_test": 2, "per_problem": 1, "fit": {"max_steps": 2, "batch_size": 2}},
            "regret_probe": {"n_train": 4, "n_test": 2, "per_problem": 1, "n_gen": 1, "max_new_tokens": 8,
                             "fit": {"max_steps": 2, "batch_size": 2}}}
    results = tmp_path / "results"
    written = E.analyse(tmp_path / "runs", results, progress=False, options=tiny, report=lambda m: None)
    assert {p.name for p in written} == {"control.json"} | {f"tokens_{s * tokens_per_step:011d}.json" for s in steps}
    point = json.loads(written[1].read_text())
    assert set(point) >= {"tokens", "accuracy", "regret", "task", *E.V_PROBES}
    assert {"acc", "majority", "n", "fit_failed"} <= set(point["nece"])
    # every point and the control were measured on the last stage's task, not on the checkpoint's own (op = 1)
    for path in written:
        assert json.loads(path.read_text())["task"] == final.spec() != task.spec()
    assert E.analyse(tmp_path / "runs", results, progress=False, options=tiny, report=lambda m: None) == []
    png, table = E.draw(results)
    assert png.stat().st_size > 0
    text = table.read_text()
    assert text.startswith("| tokens (M) |") and text.count("\n| ") == len(steps) and "First point beating majority and control" in text
    # a summary measured on another task (or before summaries named theirs) is re-measured, and left off the curve
    old = dict(point, task=task.spec())
    written[1].write_text(json.dumps(old))
    assert E.draw(results)[1].read_text().count("\n| ") == len(steps) - 1
    assert E.analyse(tmp_path / "runs", results, progress=False, options=tiny, report=lambda m: None) == [written[1]]
    assert json.loads(written[1].read_text())["task"] == final.spec()
    # another sitting: the analysed checkpoint is gone and a nearby one (same target) was carried instead: the
    # target is already summarised, so nothing is measured again
    run = tmp_path / "runs" / f"{E.STAGES[0]}-s0" / "checkpoints"
    shutil.rmtree(next(d for t, d, _ in E.checkpoints(tmp_path / "runs") if t == steps[0] * tokens_per_step))
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=192, positional="rot", seed=3, task=task.spec()))
    save_checkpoint(run, steps[0] + 100, {"format_version": 1, "step": steps[0] + 100, "model": model.state_dict()},
                    keep=10)
    assert (steps[0] + 100) * tokens_per_step in [t for t, *_ in E.checkpoints(tmp_path / "runs")]
    assert E.analyse(tmp_path / "runs", results, progress=False, options=tiny, report=lambda m: None) == []
