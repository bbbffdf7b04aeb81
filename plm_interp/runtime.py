"""How many CPU threads and data workers a call may use: the cores that are actually free, not all of them.

Why: torch starts one thread per core. On a machine shared with one other busy job, two threads per core
contend and every matmul waits on the other job's time slices, which slows a call several times over (the
figures: docs/analyses.md, "Speed, threads and convergence"). Counting the cores this process may run on
(``os.sched_getaffinity``) minus the ones other processes keep busy (their threads running now, sampled from the
kernel's run queue) and using that many threads keeps each call close to its idle speed.
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

log = logging.getLogger("plm_interp.runtime")


@dataclass(frozen=True)
class CoreBudget:
    """The cores this process may use now, and why (``reason`` is the log line)."""
    cores: int
    load: float
    threads: int
    workers: int

    @property
    def reason(self) -> str:
        return (f"{self.cores} usable cores, {self.load:.2f} busy with other work -> {self.threads} torch thread(s), "
                f"{self.workers} data worker(s)")


def usable_cores() -> int:
    """Cores this process may be scheduled on (the affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def load_average(samples: int = 5, interval: float = 0.02) -> float:
    """Threads of other processes running now: the kernel's count of runnable threads (``/proc/loadavg``'s
    4th field) less this one, averaged over ``samples`` reads ``interval`` seconds apart.

    Why not the 1-minute load average: it lags by about a minute both ways, so a call made just after a job ended
    took one thread on an idle machine, and a call made just after a job started took every core beside it.
    Threads that yield to this process (:func:`yielding_threads`, e.g. a ``nice 19`` training in the background)
    are not counted. Elsewhere (no ``/proc``) the OS's 1-minute load average is used."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                others = int(fh.read().split()[3].split("/")[0]) - 1
            counts.append(others - yielding_threads() if others > 0 else others)  # scan /proc only when needed
        except (OSError, ValueError, IndexError):
            break
        if i + 1 < samples:
            time.sleep(interval)
    if counts:
        return max(0.0, sum(counts) / len(counts))
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


#: a thread at least this much nicer than us gets under a tenth of a core while we run (CFS weights 1024 : 110)
YIELD_NICE = 10


def yielding_threads(proc: str = "/proc") -> int:
    """Runnable threads of other processes that the scheduler makes wait for this one: nice >= ours + 10 in our
    autogroup, or in another autogroup whose group nice is >= ours + 10 (with autogroups, which ``setsid`` and
    every terminal session get, a thread's own nice only ranks it inside its group).

    Why: a background campaign started with ``nice`` leaves a nice-0 call nearly the whole core, so counting it as
    busy would cost every analysis beside it a core for nothing (docs/analyses.md). 0 where ``/proc`` cannot be
    read."""
    root = Path(proc)
    groups_on = _read(root / "sys/kernel/sched_autogroup_enabled").strip() == "1"
    own_group = _autogroup(root / "self") if groups_on else None
    own_nice = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0
    count = 0
    try:
        pids = [p for p in root.iterdir() if p.name.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        group = _autogroup(pid) if groups_on else None
        other_group = group is not None and own_group is not None and group[0] != own_group[0]
        if other_group and group[1] < own_group[1] + YIELD_NICE:
            continue
        try:
            tasks = list((pid / "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            fields = _read(task / "stat").rpartition(")")[2].split()
            if len(fields) > 16 and fields[0] == "R" and (other_group or int(fields[16]) >= own_nice + YIELD_NICE):
                count += 1
    return count


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _autogroup(pid: Path) -> tuple[str, int] | None:
    """``(group name, group nice)`` from ``/proc/PID/autogroup`` ("/autogroup-156 nice 19"), None if unreadable."""
    parts = _read(pid / "autogroup").split()
    return (parts[0], int(parts[2])) if len(parts) == 3 and parts[1] == "nice" else None


def core_budget(own_threads: int = 0, cores: int | None = None, load: float | None = None) -> CoreBudget:
    """Threads = usable cores minus the load other processes put on them (rounded), at least 1.

    ``own_threads``: threads of this process already running and counted as busy (so a long job
    that re-asks does not count itself as someone else). Data workers are only worth having when a core is left
    over after the compute threads: on a busy 2-core machine a worker process steals the only free core.
    """
    cores = usable_cores() if cores is None else cores
    load = load_average() if load is None else load
    busy = max(0.0, load - own_threads)
    threads = max(1, min(cores, cores - int(busy + 0.5)))
    workers = min(2, threads // 4)  # a worker only where it does not take a compute thread's only core
    threads -= workers
    return CoreBudget(cores=cores, load=load, threads=threads, workers=workers)


@contextmanager
def torch_threads(budget: CoreBudget | None = None, verbose: bool = False) -> Iterator[CoreBudget]:
    """Run the block with ``torch.set_num_threads`` from :func:`core_budget`, then restore the caller's setting.

    An explicit ``OMP_NUM_THREADS`` / ``PLM_THREADS`` in the environment wins (the user asked for it)."""
    budget = budget or core_budget()
    forced = os.environ.get("PLM_THREADS")
    if forced:
        budget = CoreBudget(budget.cores, budget.load, max(1, int(forced)), budget.workers)
    before = torch.get_num_threads()
    threads = budget.threads if forced or "OMP_NUM_THREADS" not in os.environ else min(budget.threads, before)
    budget = CoreBudget(budget.cores, budget.load, threads, budget.workers)
    (log.warning if verbose else log.info)(budget.reason)
    torch.set_num_threads(threads)
    try:
        yield budget
    finally:
        torch.set_num_threads(before)
