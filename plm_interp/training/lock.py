"""One run directory, one writer: an exclusive lock held for the run's life.

Two ``plm-interp train`` processes on the same ``--run-dir`` would interleave ``metrics.jsonl``, mix
checkpoints and leave a ``config.json`` that describes only one of them, and both would exit 0. So every
writer takes ``RUN_DIR/.lock`` first and a second one is refused, naming the holder's pid and host.

The lock is a POSIX ``flock`` on that file, so the kernel releases it when the holder exits in any way
(return, exception, SIGKILL, OOM kill): a dead process never keeps a run locked. The file records who holds
it and a clean release deletes it, so a file found *unlocked* was left by a process that died holding it (a
"stale" lock): taking it over is reported. (Deleting is safe because a taker checks, after locking, that the
path still names the file it locked, and starts again if not.) Within one process the lock is re-entrant
(the CLI takes it before writing ``config.json``, the trainer again for the loop), counted per directory.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d, run_dir_lock(d) as lock:
    ...     lock.path.name
    '.lock'
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".lock"


class RunDirLocked(RuntimeError):
    """Another live process holds the run directory's lock; the message names its pid and host."""


@dataclass
class RunDirLock:
    """A held lock on ``path`` (``RUN_DIR/.lock``); ``stale`` describes a dead holder it replaced, if any."""
    path: Path
    fd: int
    depth: int = 1
    stale: str | None = None
    holder: dict = field(default_factory=dict)


_HELD: dict[Path, RunDirLock] = {}  # this process's locks, by resolved lock-file path


def acquire(run_dir: str | os.PathLike) -> RunDirLock:
    """Take the lock on ``run_dir`` (created if missing) or raise :class:`RunDirLocked` naming the holder."""
    directory = Path(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / LOCK_NAME).resolve()
    if path in _HELD:
        _HELD[path].depth += 1
        return _HELD[path]
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise RunDirLocked(f"run directory {directory} is in use by another writer: {_describe(_read(path))}; "
                               f"wait for it to finish or stop it, or use another --run-dir (lock file {path})") \
                from None
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder released (deleted) it between our open and our flock: take the new one
    previous = _read(path)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "argv": " ".join(sys.argv)[:500]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    lock = RunDirLock(path, fd, holder=holder,
                      stale=f"stale lock taken over: {_describe(previous)} had died holding it" if previous else None)
    _HELD[path] = lock
    return lock


def release(lock: RunDirLock) -> None:
    """Undo one :func:`acquire`; the last one deletes the file (a clean exit) and drops the ``flock``."""
    lock.depth -= 1
    if lock.depth > 0:
        return
    _HELD.pop(lock.path, None)
    with contextlib.suppress(OSError):
        os.unlink(lock.path)  # while still locked, so nobody can take this inode in between
    os.close(lock.fd)  # closing the descriptor releases the flock


def holder(run_dir: str | os.PathLike) -> dict | None:
    """Who holds ``run_dir``'s lock, if a live process other than this one does (its pid, host, since, argv), else
    None. Read-only: a shared ``flock`` probe that never creates, truncates or deletes the lock file (so
    ``plm-interp experiment --dry-run`` can say which runs are being worked on)."""
    path = Path(run_dir) / LOCK_NAME
    if path.resolve() in _HELD:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        return _read(path) or {}
    finally:
        os.close(fd)  # drops the probe's shared lock, if it got one
    return None


@contextlib.contextmanager
def run_dir_lock(run_dir: str | os.PathLike) -> Iterator[RunDirLock]:
    """``with run_dir_lock(d):`` hold ``d``'s lock for the block, released however the block ends."""
    lock = acquire(run_dir)
    try:
        yield lock
    finally:
        release(lock)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_ino, mine.st_dev) == (on_disk.st_ino, on_disk.st_dev)


def _read(path: Path) -> dict | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text[:200]}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "a process that has not recorded itself yet"
    if "pid" in holder:
        return f"pid {holder['pid']} on host {holder.get('host', '?')} (since {holder.get('since', '?')})"
    return f"an unknown holder ({holder.get('raw', '')!r})"
