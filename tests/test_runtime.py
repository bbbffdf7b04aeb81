"""Threads and workers from the free cores (issue 17): one busy job on 2 cores leaves one thread, no worker."""
import os

import pytest
import torch

from plm_interp.progress import Stages
from plm_interp.runtime import core_budget, torch_threads


@pytest.mark.parametrize("cores, load, own, threads, workers", [
    (2, 0.0, 0, 2, 0),    # idle 2-core machine: both cores
    (2, 1.0, 0, 1, 0),    # one other busy job: one thread, no data worker
    (2, 7.0, 0, 1, 0),    # overloaded: never fewer than one
    (2, 2.0, 2, 2, 0),    # the load is our own two threads: not someone else's
    (16, 0.0, 0, 14, 2),  # many free cores: two of them feed the data
    (16, 8.0, 0, 6, 2),
])
def test_core_budget_subtracts_the_other_jobs_load(cores, load, own, threads, workers):
    b = core_budget(own_threads=own, cores=cores, load=load)
    assert (b.threads, b.workers) == (threads, workers)
    assert f"{cores} usable cores" in b.reason and f"{threads} torch thread(s)" in b.reason


def test_torch_threads_sets_and_restores_and_an_explicit_request_wins(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("PLM_THREADS", "1")
    with torch_threads(core_budget(cores=2, load=0.0)) as b:
        assert torch.get_num_threads() == 1 and b.threads == 1
    assert torch.get_num_threads() == before


def test_one_bar_names_the_stage_and_progress_false_is_silent(capsys):
    with Stages("nt_probe", {"activations": 1, "trained probes": 2}, progress=True) as bar:
        bar.stage("activations").advance(1)
        bar.stage("trained probes").advance(2)
        with pytest.raises(KeyError, match="control"):
            bar.stage("control")
    err = capsys.readouterr().err
    assert "nt_probe [activations]" in err and "nt_probe [trained probes]" in err
    with Stages("nt_probe", {"activations": 1}, progress=False) as bar:
        bar.stage("activations").advance(1)
    assert capsys.readouterr().err == ""


def test_busy_threads_are_read_from_the_run_queue_now_not_the_minute_average(monkeypatch):
    """/proc/loadavg reads "1-min 5-min 15-min running/total last-pid": the running count less this reader."""
    import io

    from plm_interp import runtime

    reads = iter(["7.90 3.00 1.00 2/300 99\n", "7.90 3.00 1.00 3/300 99\n", "7.90 3.00 1.00 2/300 99\n",
                  "7.90 3.00 1.00 2/300 99\n"])
    monkeypatch.setattr(runtime, "open", lambda *a, **k: io.StringIO(next(reads)), raising=False)
    monkeypatch.setattr(runtime, "yielding_threads", lambda: 0)  # nothing niced runs (see the tests below)
    assert runtime.load_average(samples=4, interval=0) == pytest.approx((1 + 2 + 1 + 1) / 4)
    # a runnable thread that yields to us (a niced job) is not someone else's busy core
    reads = iter(["7.90 3.00 1.00 3/300 99\n"] * 2)
    monkeypatch.setattr(runtime, "yielding_threads", lambda: 1)
    assert runtime.load_average(samples=2, interval=0) == pytest.approx(1)


def _plant_proc(root, autogroups: bool):
    """A fake /proc: (pid, autogroup, group nice, [(state, thread nice), ...])."""
    (root / "sys/kernel").mkdir(parents=True)
    (root / "sys/kernel/sched_autogroup_enabled").write_text("1\n" if autogroups else "0\n")
    (root / "self").mkdir()
    (root / "self/autogroup").write_text("/autogroup-1 nice 0\n")
    procs = [(100, 1, 0, [("R", 19), ("R", 0), ("S", 19)]),  # our group: only the niced runnable thread yields
             (200, 2, 19, [("R", 0)]),   # a niced group (setsid + nice the group): yields whatever its thread nice
             (300, 3, 0, [("R", 19)]),   # another group at nice 0: its thread nice ranks it only inside its group
             (500, 5, 19, [("R", 0), ("R", 19)])]
    for pid, group, gnice, tasks in procs:
        (root / str(pid)).mkdir()
        (root / str(pid) / "autogroup").write_text(f"/autogroup-{group} nice {gnice}\n")
        for k, (state, nice) in enumerate(tasks):
            d = root / str(pid) / "task" / str(pid + k)
            d.mkdir(parents=True)
            fields = [state] + ["0"] * 15 + [str(nice)] + ["0"] * 5
            (d / "stat").write_text(f"{pid + k} (py (thon)) " + " ".join(fields) + "\n")


@pytest.mark.parametrize("autogroups, expected", [(True, 4), (False, 3)])
def test_threads_that_yield_to_us_are_counted_by_their_effective_priority(tmp_path, monkeypatch, autogroups, expected):
    """With autogroups a thread's nice only ranks it within its group; without, the thread's nice is what counts."""
    from plm_interp import runtime

    monkeypatch.setattr(runtime.os, "getpriority", lambda *a: 0)
    _plant_proc(tmp_path, autogroups)
    # autogroups: 100's niced thread, 200's thread, both of 500's = 4; without: 100's, 300's and 500's niced one = 3
    assert runtime.yielding_threads(str(tmp_path)) == expected


def test_a_niced_busy_job_leaves_its_core_to_us():
    """Live: a nice-19 spinner in our own group is runnable, yet the run-queue count leaves it out."""
    import subprocess
    import sys
    import time

    from plm_interp import runtime

    child = subprocess.Popen([sys.executable, "-c", "import os\nos.nice(19)\nwhile True: pass"])
    try:
        deadline, seen = time.time() + 5, 0
        while time.time() < deadline and not seen:
            time.sleep(0.1)
            seen = runtime.yielding_threads()
        assert seen >= 1
    finally:
        child.kill()
        child.wait()
