"""What the use cases work on: the configuration, the catalog, the blob store, the group
commit of uploads and resolve's cache of built source maps; and the blob reference rules
every use case that stores or frees blobs follows (DESIGN D10)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from ..config import Config
from ..models import StoredBlob
from ..storage.blobs import BlobStore, StagedBlob
from ..storage.catalog import Catalog, WriteTx, rolled_back
from .sourcemap_cache import SourceMapCaches
from .upload_batch import UploadBatcher, discard_objects

log = logging.getLogger(__name__)


class Backend:
    """The server's state as the use cases see it (built once per app)."""

    __slots__ = ("blobstore", "catalog", "config", "sourcemaps", "uploads")

    def __init__(self, config: Config, catalog: Catalog, blobstore: BlobStore) -> None:
        self.config = config
        self.catalog = catalog
        self.blobstore = blobstore
        self.uploads = UploadBatcher(catalog, blobstore)
        # Built SourceMapCaches for resolve, by (minified sha1, map sha1).
        self.sourcemaps = SourceMapCaches(config.resolve_cache_size)

    @property
    def deferred_deletion(self) -> bool:
        """Whether freed blobs are left to the collector (a shared catalog with a keyed
        store) instead of being deleted right after the commit that freed them."""
        return deferred_deletion(self.catalog, self.blobstore)


def deferred_deletion(catalog: Catalog, blobstore: BlobStore) -> bool:
    """A shared catalog has no one writer once its blob store is keyed (PostgreSQL + S3):
    no blob is deleted inline there, only by the collector after a grace period."""
    return catalog.shared and not blobstore.content_addressed


def delete_after_commit(backend: Backend, tx: WriteTx, names: Iterable[str]) -> None:
    """Delete these blobs' bytes once `tx` has committed.

    A crash in between leaves unreferenced bytes, which the start-up sweep (or, on a shared
    catalog, the collector) removes.
    """
    doomed = list(names)
    if doomed:

        async def delete() -> None:
            await asyncio.to_thread(backend.blobstore.delete, doomed)

        tx.after_commit(delete)


async def release_blobs(backend: Backend, tx: WriteTx, candidates: Iterable[str]) -> None:
    """The blobs `candidates` may have lost their last reference in `tx`: under one writer
    their rows and bytes go now (after the commit); with deferred deletion they are stamped
    unreferenced for the collector."""
    if backend.deferred_deletion:
        await tx.blobs.mark_unreferenced(candidates)
    else:
        delete_after_commit(backend, tx, await tx.blobs.free(candidates))


class BlobWrites:
    """Staged blobs on their way into the blob store and the catalog (see `blob_writes`)."""

    def __init__(self, backend: Backend, items: Sequence[tuple[StagedBlob, StoredBlob]]) -> None:
        self.backend = backend
        self.items = list(items)
        # A keyed store's objects, written before the transaction.
        self.early: list[StoredBlob] | None = None
        self.committed = False

    async def reference(self, tx: WriteTx) -> list[StoredBlob]:
        """Inside the transaction that references them: a content-addressed store promotes
        now, under the catalog's writer; then the rows (one per sha1, whoever stored it first);
        objects that did not become their sha1's go after the commit."""
        stored = self.early
        if stored is None:
            stored = await asyncio.to_thread(self.backend.blobstore.promote_many, self.items)
        lost = await tx.blobs.add(stored)

        async def committed() -> None:
            self.committed = True

        tx.after_commit(committed)
        if lost:
            # Best effort, as the upload is stored: an object no row names waits for the
            # collector's leftover sweep if this fails.
            async def discard_lost() -> None:
                await discard_objects(self.backend.blobstore, [b.name for b in lost])

            tx.after_commit(discard_lost)
        return stored


@asynccontextmanager
async def blob_writes(backend: Backend, items: Sequence[tuple[StagedBlob, StoredBlob]]) -> AsyncIterator[BlobWrites]:
    """Store staged blobs for a write transaction opened inside this block.

    A keyed store's uploads run here, before the transaction, so no transaction waits on the
    network (DESIGN invariant 5) and a write needs no lock that spans processes: each upload
    is a new object nobody else can name. If the block surely rolled back, those objects
    are deleted again (what a crash or an uncertain commit leaves, the collector finds)."""
    writes = BlobWrites(backend, items)
    if not backend.blobstore.content_addressed and writes.items:
        writes.early = await asyncio.to_thread(backend.blobstore.promote_many, writes.items)
    try:
        yield writes
    except BaseException as exc:
        if writes.early and not writes.committed and rolled_back(exc):
            await discard_objects(backend.blobstore, [b.name for b in writes.early])
        raise
