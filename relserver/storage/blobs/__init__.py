"""The blob store port: bytes under a name, with no paths in the interface.

A *content-addressed* store (disk) names a blob by its sha1: storing bytes already there is
a no-op, and a blob is deleted the moment its row goes, under the catalog's one writer. A
*keyed* store (S3) gives every stored blob a fresh random name (`StoredBlob.key`), so nothing
ever writes to or deletes a name another process may be using; the catalog's blob row, unique
by sha1, says which object holds a sha1's bytes (DESIGN D10).

Every method blocks (file or network I/O, hashing) and runs in a worker thread; async
callers hop with `asyncio.to_thread`. Engines: `disk` (the default) and `s3` (an
S3-compatible bucket, `--blob-url s3://…`). A staged blob lives on local disk for every
engine: hashing needs its bytes before their name is known, and zipfile needs a seekable file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from ...models import StoredBlob


class BlobStoreUnavailable(RuntimeError):
    """The configured blob store cannot be used (unreachable, refused, missing); one line says why.

    Raised at start when the probe fails, and by any call at run time that meets the same
    (a bucket removed, credentials revoked, the endpoint down): the API answers it with a
    Sentry-shaped 503."""


class StagedBlob(Protocol):
    """Bytes being received into local staging, hashed as they are written."""

    path: Path
    consumed: bool
    # Bytes written so far.
    size: int

    def write(self, data: bytes) -> None: ...

    def finish(self) -> StoredBlob:
        """Flush (and fsync, unless the store was told not to); the staged file stays until
        `promote` or `discard`."""
        ...

    def discard(self) -> None: ...


class BlobStore(Protocol):
    # True: names are sha1s (disk); False: every stored blob gets a new random name (S3).
    content_addressed: bool

    def prepare(self) -> None:
        """Create what the engine needs (directories) and check it can be used; raises
        BlobStoreUnavailable with a one-line reason when a remote store cannot."""
        ...

    def stage(self) -> StagedBlob: ...

    def promote(self, staged: StagedBlob, blob: StoredBlob) -> StoredBlob:
        """Make a finished staged blob durable in the store; the blob as stored (with its
        new `key` in a keyed store). A content-addressed store does nothing when the sha1 is
        already there (the staged copy is then discarded)."""
        ...

    def promote_many(self, items: list[tuple[StagedBlob, StoredBlob]]) -> list[StoredBlob]: ...

    def put_small(self, data: bytes) -> StoredBlob:
        """Hash bytes held in memory and store them (content-addressed: no write when present)."""
        ...

    def exists(self, name: str) -> bool: ...

    def delete(self, names: list[str]) -> None:
        """Remove these blobs; a missing one is not an error."""
        ...

    def open_range(self, name: str, start: int = 0, count: int | None = None) -> Iterator[bytes]:
        """The blob's bytes from `start`, `count` of them (all when None), in bounded pieces."""
        ...

    def local_path(self, name: str) -> Path | None:
        """A local file holding the blob, for zero-copy sendfile; None where there is none."""
        ...

    def presigned_url(self, name: str, expires: timedelta) -> str | None:
        """A URL that lets its holder GET the blob for `expires` without credentials of its
        own (S3's presigned URL); None where the store has none (disk)."""
        ...

    def iter_names(self, older_than: datetime | None = None) -> Iterator[str]:
        """Every blob stored (last written before `older_than`, when given): a full listing,
        for the start-up sweep, vacuum, check and the collector's hunt for leftovers."""
        ...

    def stale_staged(self) -> list[Path]:
        """Staged files left behind by a previous process (by name; nothing else)."""
        ...


@dataclass(frozen=True, slots=True)
class SweepReport:
    temp_files: int
    orphan_blobs: int
    # Catalog rows of blobs nothing referenced any more (pruned before the files were swept).
    blob_rows: int = 0


def sweep(blobs: BlobStore, referenced: set[str] | frozenset[str] | None, *, blob_rows: int = 0) -> SweepReport:
    """Remove relserver's staged leftovers and every blob no row references (DESIGN
    invariants 1, 10), through the port, so every engine sweeps alike; with `referenced`
    None, the staged leftovers only.

    `referenced`: the object names blob rows hold.
    Only while holding the data dir's lock (start-up, vacuum): a staged file may be an upload
    in flight of whoever holds it.
    """
    temp_files = 0
    for path in blobs.stale_staged():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            temp_files += 1
    if referenced is None:
        return SweepReport(temp_files=temp_files, orphan_blobs=0, blob_rows=blob_rows)
    orphans = [name for name in blobs.iter_names() if name not in referenced]
    blobs.delete(orphans)
    return SweepReport(temp_files=temp_files, orphan_blobs=len(orphans), blob_rows=blob_rows)
