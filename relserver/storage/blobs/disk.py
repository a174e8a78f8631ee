"""The disk engine of the blob store: temp file → fsync → rename to blobs/ab/cd/<sha1>.

Every method here blocks (it does file I/O and hashing) and is meant to run in a worker
thread; the async callers hop with `asyncio.to_thread`. Knows nothing of HTTP or SQL.
Client strings never become paths: temp names are random and blob names are the sha1 the
server computed (DESIGN invariant 6).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from ...models import StoredBlob
from . import StagedBlob

log = logging.getLogger(__name__)

_SHA1_HEX = re.compile(r"[0-9a-f]{40}")
# Temp names are `relserver-<random>.part` (tempfile.mkstemp's random part: letters, digits,
# `_`). The sweep removes only names of that shape, so a data dir pointed at a directory that
# already has a `tmp/` (`--data-dir .`) never loses a file relserver did not create
# (DESIGN invariant 10).
TEMP_PREFIX = "relserver-"
TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TempBlob:
    """One file being received: bytes are hashed and written as they arrive."""

    def __init__(self, tmp_dir: Path, *, fsync: bool) -> None:
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._fsync = fsync
        self._hash = hashlib.sha1()  # noqa: S324 -- Sentry identifies files by sha1
        self.size = 0
        # Set once the file has been renamed into the store or removed: nothing left to clean.
        self.consumed = False

    def write(self, data: bytes) -> None:
        """Hash and append one batch (blocking)."""
        self._hash.update(data)
        self._file.write(data)
        self.size += len(data)

    def finish(self) -> StoredBlob:
        """Flush and fsync the bytes; the temp file stays until `DiskBlobStore.promote`."""
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())
        self._file.close()
        return StoredBlob(sha1=self._hash.hexdigest(), size=self.size)

    def discard(self) -> None:
        """Close and remove the temp file; safe to call more than once."""
        self.consumed = True
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# Bytes per piece when a blob is read through `open_range` (a hop's worth, invariant 4).
READ_PIECE_SIZE = 256 * 1024


class DiskBlobStore:
    """Files under `blob_dir`, named by their sha1, plus a private `tmp_dir` on the same disk
    (so that promoting is a rename). Implements `storage.blobs.BlobStore`; content-addressed:
    a blob's name is its sha1."""

    content_addressed = True

    def __init__(self, blob_dir: Path, tmp_dir: Path, *, fsync: bool) -> None:
        self.blob_dir = blob_dir
        self.tmp_dir = tmp_dir
        self.fsync = fsync

    def prepare(self) -> None:
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, sha1: str) -> Path:
        if not _SHA1_HEX.fullmatch(sha1):
            raise ValueError(f"not a sha1: {sha1!r}")
        return self.blob_dir / sha1[:2] / sha1[2:4] / sha1

    def presigned_url(self, name: str, expires: timedelta) -> str | None:
        return None

    def local_path(self, sha1: str) -> Path | None:
        return self._path(sha1)

    def exists(self, sha1: str) -> bool:
        return self._path(sha1).exists()

    def stage(self) -> TempBlob:
        return TempBlob(self.tmp_dir, fsync=self.fsync)

    def promote(self, staged: StagedBlob, blob: StoredBlob) -> StoredBlob:
        """Move a finished temp file to its content address, durably; dedups by name."""
        final = self._path(blob.sha1)
        if final.exists():
            # Same sha1, same bytes: the copy already there was fsync'd before its rename.
            staged.discard()
            return blob
        self._make_dirs(final.parent)
        os.replace(staged.path, final)
        staged.consumed = True
        if self.fsync:
            _fsync_dir(final.parent)
        return blob

    def put_small(self, data: bytes) -> StoredBlob:
        """Hash a small file held in memory and store it durably under its sha1.

        A file already stored costs no write at all; otherwise temp file, fsync and rename,
        as for a streamed file.
        """
        blob = StoredBlob(sha1=hashlib.sha1(data).hexdigest(), size=len(data))  # noqa: S324 -- Sentry's file id
        if self.exists(blob.sha1):
            return blob
        temp = self.stage()
        try:
            temp.write(data)
            temp.finish()
            self.promote(temp, blob)
        except BaseException:
            temp.discard()
            raise
        return blob

    def promote_many(self, items: list[tuple[StagedBlob, StoredBlob]]) -> list[StoredBlob]:
        return [self.promote(temp, blob) for temp, blob in items]

    def _make_dirs(self, directory: Path) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            if self.fsync:
                _fsync_dir(d.parent)

    def delete(self, sha1s: list[str]) -> None:
        for sha1 in sha1s:
            with contextlib.suppress(FileNotFoundError):
                self._path(sha1).unlink()

    def open_range(self, sha1: str, start: int = 0, count: int | None = None) -> Iterator[bytes]:
        """The blob's bytes in pieces of at most READ_PIECE_SIZE; FileNotFoundError if absent."""
        with self._path(sha1).open("rb") as source:
            source.seek(start)
            left = count
            while left is None or left > 0:
                piece = source.read(READ_PIECE_SIZE if left is None else min(READ_PIECE_SIZE, left))
                if not piece:
                    return
                if left is not None:
                    left -= len(piece)
                yield piece

    def iter_names(self, older_than: datetime | None = None) -> Iterator[str]:
        """Every blob on disk (a full directory walk; start-up and vacuum only).

        Only regular files named by a sha1 at that sha1's own `ab/cd/` place count: anything
        else under `blobs/` is not relserver's and is never touched.
        """
        before = None if older_than is None else older_than.timestamp()
        for path in self.blob_dir.glob("*/*/*"):
            ours = _SHA1_HEX.fullmatch(path.name) and path == self._path(path.name) and _is_regular_file(path)
            if ours and (before is None or _mtime(path) < before):
                yield path.name

    def stale_staged(self) -> list[Path]:
        return stale_temp_files(self.tmp_dir)


def stale_temp_files(tmp_dir: Path) -> list[Path]:
    """relserver's own temp files in `tmp_dir` (by name); nothing else found there."""
    if not tmp_dir.is_dir():
        return []
    return [p for p in tmp_dir.iterdir() if _TEMP_NAME.fullmatch(p.name) and _is_regular_file(p)]


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _is_regular_file(path: Path) -> bool:
    """A regular file itself, not a symlink to one (lstat: never follows)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False
