"""The data dir's owner: one exclusive lock per data dir, and one-line reasons it cannot be used.

DESIGN invariant 10: a data dir has one owner. The serving process (and `relserver vacuum`)
holds `flock(LOCK_EX)` on `<data-dir>/lock` for its whole life and writes its pid into the
file, so a second one can say who holds it. The kernel drops the lock when the process ends,
however it ends (`kill -9` included), so a stale file never blocks a restart. The file is never
deleted: unlinking a lock file lets two processes lock two different inodes.

Everything here blocks (file I/O) and is called from a worker thread or before the event loop
runs. Knows nothing of HTTP or SQL.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
from pathlib import Path

from .storage.blobs import BlobStoreUnavailable
from .storage.catalog import CatalogUnavailable

LOCK_NAME = "lock"
# The pid is a decimal line; Linux pids are at most 2**22 (7 digits), 32 bytes is ample.
_PID_READ_SIZE = 32

_WRITE_REFUSALS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


class DataDirError(Exception):
    """A data dir that cannot be used; the message is the whole line the CLI prints."""


class DataDirInUse(DataDirError):
    def __init__(self, data_dir: Path, pid: int | None, advice: str = "a data dir has one owner") -> None:
        self.data_dir = data_dir
        self.pid = pid
        self.holder = f"pid {pid}" if pid is not None else "a process that has not written its pid yet"
        super().__init__(f"{data_dir} is in use by another relserver ({self.holder}); {advice}")


class DataDirLock:
    """`flock` on `<data-dir>/lock`, taken without waiting; `release()` (or process exit) drops it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `DataDirInUse` naming the holder's pid (blocking I/O, no wait)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirInUse(self.data_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            line = f"{os.getpid()}\n".encode()
            # Write, then cut: a reader never sees an empty file where a pid was.
            os.pwrite(fd, line, 0)
            os.ftruncate(fd, len(line))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock; safe to call more than once."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, _PID_READ_SIZE, 0).split(b"\n", 1)[0])
    return None


def why_not_writable(data_dir: Path) -> str | None:
    """The reason writes into `data_dir` fail, if the file system or permissions say so."""
    with contextlib.suppress(OSError):
        if os.statvfs(data_dir).f_flag & os.ST_RDONLY:
            return "read-only file system"
    if data_dir.exists() and not os.access(data_dir, os.W_OK):
        return "permission denied"
    return None


def describe_error(data_dir: Path, exc: BaseException) -> str | None:
    """One line for an error that opening or writing the data dir raised, or None if unknown.

    A read-only data dir shows up as OSError (EROFS, EACCES, EPERM) from a mkdir or open, or as
    SQLite's "attempt to write a readonly database" / "unable to open database file" (SQLite
    cannot create the WAL index beside the database); each becomes `cannot write <dir>: why`.
    """
    if isinstance(exc, (DataDirError, CatalogUnavailable, BlobStoreUnavailable)):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in _WRITE_REFUSALS:
        return f"cannot write {data_dir}: {_WRITE_REFUSALS[exc.errno]}"
    if isinstance(exc, sqlite3.OperationalError):
        reason = why_not_writable(data_dir)
        if reason is None and "readonly" in str(exc):
            reason = "read-only database"
        if reason is not None:
            return f"cannot write {data_dir}: {reason}"
        return f"cannot open the database in {data_dir}: {exc}"
    if isinstance(exc, (OSError, sqlite3.Error, RuntimeError)):
        return f"cannot open {data_dir}: {exc}"
    return None
