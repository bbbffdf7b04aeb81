"""Stop a run cleanly on SIGTERM or SIGINT: finish the step, save a checkpoint, then stop.

Why: a batch scheduler ends a job with SIGTERM (a time limit, a preemption, ``scancel``), a session that closes
sends it to its jobs, and Ctrl-C sends SIGINT. Without this, the run loses every step since its last scheduled
checkpoint, up to ``ckpt_every`` of them. With it, the trainer finishes the step it is on, writes a checkpoint of that
step (the same atomic writer as a scheduled one) and raises :class:`TrainingStopped`; re-running with ``--resume``
continues from exactly there. A second signal of the same kind acts at once, as it would without this module (a
user who presses Ctrl-C twice wants out). SIGKILL cannot be caught; the scheduled checkpoints cover it.

Signal handlers can only be set from the main thread; elsewhere (a training thread in a notebook, say) the
signals keep their usual action and only the scheduled checkpoints apply.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingStopped(Exception):
    """Training stopped on a signal after the checkpoint of the step it was on was written."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        where = f"checkpoint saved in {checkpoint}; run again with --resume to continue from it" if checkpoint \
            else "nothing was saved (no run directory)"
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}: {where}")

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (SIGTERM 143, SIGINT 130)."""
        return 128 + self.signum


@dataclass
class StopRequest:
    """Set by the handler: the number of the first stop signal received, else ``None``."""
    signum: int | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While inside, SIGTERM / SIGINT set the yielded request instead of ending the process; restored on exit."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    previous = {s: signal.SIG_DFL if h is None else h for s, h in previous.items()}  # None: set outside Python

    def handler(signum, frame):
        request.signum = request.signum or signum
        signal.signal(signum, previous[signum])  # the next one of this kind acts as it would have

    for s in SIGNALS:
        signal.signal(s, handler)
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
