"""The blob store port: bytes named by their sha1, with no paths in the interface.

Every method blocks (file or network I/O, hashing) and runs in a worker thread; async
callers hop with `asyncio.to_thread`. Engines: `disk` (the default) and `s3` (an
S3-compatible bucket, `--blob-url s3://…`). A staged blob lives on local disk for every
engine: hashing needs its bytes before their name is known, and zipfile needs a seekable file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ...models import StoredBlob


class BlobStoreUnavailable(RuntimeError):
    """The configured blob store cannot be used (unreachable, refused, missing); one line says why."""


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
    def prepare(self) -> None:
        """Create what the engine needs (directories) and check it can be used; raises
        BlobStoreUnavailable with a one-line reason when a remote store cannot."""
        ...

    def stage(self) -> StagedBlob: ...

    def promote(self, staged: StagedBlob, blob: StoredBlob) -> None:
        """Make a finished staged blob the blob `blob.sha1`, durably; idempotent when that
        blob already exists (the staged copy is then discarded)."""
        ...

    def promote_many(self, items: list[tuple[StagedBlob, StoredBlob]]) -> None: ...

    def put_small(self, data: bytes) -> StoredBlob:
        """Hash bytes held in memory and store them under their sha1 (no write when present)."""
        ...

    def exists(self, sha1: str) -> bool: ...

    def delete(self, sha1s: list[str]) -> None:
        """Remove these blobs; a missing one is not an error."""
        ...

    def open_range(self, sha1: str, start: int = 0, count: int | None = None) -> Iterator[bytes]:
        """The blob's bytes from `start`, `count` of them (all when None), in bounded pieces."""
        ...

    def local_path(self, sha1: str) -> Path | None:
        """A local file holding the blob, for zero-copy sendfile; None where there is none."""
        ...

    def iter_sha1s(self) -> Iterator[str]:
        """Every blob stored (a full listing: start-up sweep and vacuum only)."""
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


def sweep(blobs: BlobStore, referenced: set[str] | None, *, blob_rows: int = 0) -> SweepReport:
    """Remove relserver's staged leftovers and every blob no row references (DESIGN
    invariants 1, 10), through the port, so every engine sweeps alike; with `referenced`
    None, the staged leftovers only.

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
    orphans = [sha1 for sha1 in blobs.iter_sha1s() if sha1 not in referenced]
    blobs.delete(orphans)
    return SweepReport(temp_files=temp_files, orphan_blobs=len(orphans), blob_rows=blob_rows)
