"""The sweep of leftovers (start-up and `relserver vacuum`): unreferenced blob rows and files,
stale temp files; and the read-only check of a data dir (`relserver check`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..models import CatalogCheck
from ..storage import blobs
from ..storage.blobs import BlobStore, SweepReport
from ..storage.catalog import Catalog
from .context import deferred_deletion


async def sweep_leftovers(catalog: Catalog, blobstore: BlobStore) -> SweepReport:
    """Prune unreferenced blob rows, then remove unreferenced blob files and stale temp files.

    Start-up and `relserver vacuum` run this, only while they hold the data dir's lock: with
    no other process on the data dir, every relserver temp file is a leftover of a crash and
    every unreferenced blob one of a delete interrupted mid-way (DESIGN invariants 1, 10).

    On a shared catalog other processes may be between storing a blob and committing its row,
    so no blob's bytes are deleted here: only this data dir's temp files. With a keyed store
    (S3) the rows nothing references are stamped for the collector, which deletes them and
    any object no row names once the grace period has passed (DESIGN D10); with a disk store
    they are pruned, under the writer lock that store's engine takes for every write.
    """
    async with catalog.write() as tx:
        if deferred_deletion(catalog, blobstore):
            pruned = await tx.blobs.mark_all_unreferenced()
        else:
            pruned = await tx.blobs.prune()
        referenced = None if catalog.shared else await tx.blobs.names()
    return await asyncio.to_thread(blobs.sweep, blobstore, referenced, blob_rows=pruned)


@dataclass(frozen=True, slots=True)
class DataDirCheck:
    """A data dir's consistency (DESIGN invariant 1: a row never points at a missing blob)."""

    catalog: CatalogCheck
    # Blob rows whose bytes the blob store does not hold (by the bytes' names there).
    missing_bytes: tuple[str, ...]
    # Bytes no blob row names: harmless leftovers the next sweep removes.
    unreferenced_bytes: int

    @property
    def problems(self) -> list[str]:
        found = []
        if self.catalog.integrity != "ok":
            found.append(f"the database is damaged: {self.catalog.integrity}")
        found += [f"a row references blob {sha1}, which has no blob row" for sha1 in self.catalog.dangling]
        found += [f"blob {sha1} has a row but no bytes" for sha1 in self.missing_bytes]
        return found


async def check_data_dir(catalog: Catalog, blobstore: BlobStore) -> DataDirCheck:
    """Read-only, so safe beside a running server: a blob row is written only after its bytes
    are in place, so a row without bytes is a real fault, never an upload in flight."""
    found = await catalog.check()
    async with catalog.read() as tx:
        named = await tx.blobs.names()
    stored = await asyncio.to_thread(lambda: set(blobstore.iter_names()))
    missing = named - stored
    if missing:
        # A collector may have deleted a row, then its object, since the names were read.
        async with catalog.read() as tx:
            missing &= await tx.blobs.named(missing)
    return DataDirCheck(
        catalog=found,
        missing_bytes=tuple(sorted(missing)),
        unreferenced_bytes=len(stored - named),
    )
