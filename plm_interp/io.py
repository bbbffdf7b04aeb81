"""Atomic, verifiable file writes: nothing half-written is ever left under a final name.

Every writer goes to a temporary file in the same directory, flushes and fsyncs it, then ``os.replace``s it
into place (atomic on POSIX). ``sha256_file`` lets readers detect truncation or bit rot.

The final file gets the mode a plain ``open()`` would give it (``0o666`` less the umask, or the mode of the
file it replaces), not ``mkstemp``'s private ``0o600``: a shared run directory stays readable by the group.
A failed write (a full disk above all) raises ``OSError`` with its errno and a message naming the errno
(``ENOSPC``) and the file, rather than whatever the serialiser makes of a short write.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~current_umask())
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise write_error(exc, path) from exc
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file object whose contents replace ``path`` atomically when the block ends without error.

    Writes go through :func:`_write` (``os.write``), so a full disk surfaces as ``OSError(ENOSPC)`` even
    when the writer is a serialiser (``torch.save``) that would otherwise report only a short write.
    """
    with atomic_path(path) as tmp:
        sink = _Sink(os.open(tmp, os.O_WRONLY | os.O_TRUNC))
        try:
            yield sink
        except Exception:
            if sink.error is not None:  # the serialiser wrapped our OSError; the OSError is the real story
                raise sink.error from None
            raise
        finally:
            sink.close()
        if sink.error is not None:
            raise sink.error


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_png(path: str | os.PathLike, fig, dpi: int = 110) -> None:
    """Render a matplotlib figure to PNG in memory, write it atomically, and close the figure (no open-figure
    leak when an analysis saves many plots)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)  # elsewhere: the classic set-and-restore (restrictive in between)
    os.umask(mask)
    return mask


def write_error(exc: OSError, path: Path) -> OSError:
    """``exc`` re-raised with its errno's name and the file: "[ENOSPC] No space left on device: writing X"."""
    if exc.errno is None:
        return exc
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    hint = "; free some space (or point the run elsewhere) and resume" if exc.errno == errno.ENOSPC else ""
    return type(exc)(exc.errno, f"{name} ({os.strerror(exc.errno)}) while writing {path}{hint}")


def _write(fd: int, data: memoryview) -> int:
    """One ``os.write``; the single place a fault-injection test patches to simulate a full disk."""
    return os.write(fd, data)


class _Sink(io.RawIOBase):
    """Write-only raw file over a descriptor that remembers the first ``OSError`` it raised."""

    def __init__(self, fd: int):
        super().__init__()
        self.fd, self.error = fd, None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += _write(self.fd, view[done:])
        except OSError as exc:
            self.error = self.error or exc
            raise
        return done

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()
