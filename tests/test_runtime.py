"""Threads and workers from the free cores (issue 17): one busy job on 2 cores leaves one thread, no worker."""
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
    assert runtime.load_average(samples=4, interval=0) == pytest.approx((1 + 2 + 1 + 1) / 4)
