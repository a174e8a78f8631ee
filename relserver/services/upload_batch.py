"""The group commit of uploads: files that arrive while a write transaction is open are
committed together in the next one (one lock, one BEGIN/COMMIT and one WAL fsync for the lot
under SQLite's single writer). Each caller gets its answer only after that COMMIT, so a 201 is
durable.

Order inside the transaction: which releases still exist and which idents are taken (so a 409
never touches a content-addressed store), then the blobs go into the blob store side by side,
then the rows. A row therefore never exists before its blob; a crash between the two leaves a
blob without a row, which the start-up sweep removes (DESIGN invariant 1).

A keyed store (S3) is written before the transaction instead: no transaction waits on the
network, and the write takes no lock across processes, since the UNIQUE ident and the blob
row's sha1 decide every race. A batch that loses one (another process committed the same
ident, or deleted the release, in between) runs again, and its losers then see their 409 or
404; objects that no row came to name are deleted after the commit. An upload whose name is
taken is written too and answered its 409 by the batch: a look beforehand would cost every
upload a database round trip (about 0.3 ms of CPU here, the PUT about 0.5 ms) to spare the
rare duplicate one PUT and one DELETE.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..models import ReleaseFile, StoredBlob
from ..storage.blobs import BlobStore
from ..storage.catalog import (
    Catalog,
    DuplicateReleaseFile,
    NewReleaseFile,
    ReferenceGone,
    ReleaseGone,
    UniqueViolation,
    WriteTx,
    rolled_back,
)
from ..storage.sql.dialect import ts, utcnow

# How often a batch runs again after losing a race to another process (each loss means a
# competitor committed, so the next try sees it); more than a few means something else is wrong.
BATCH_ATTEMPTS = 4


@dataclass(slots=True)
class PendingFile:
    """An upload waiting for the next group commit."""

    organization_id: int
    release_id: int
    name: str
    ident: str
    dist: str | None
    headers: dict[str, str]
    # Puts the bytes into the blob store (durably) and says what they are.
    commit_blob: Callable[[], Awaitable[StoredBlob]]
    answer: asyncio.Future[ReleaseFile]
    # A keyed store's write, done before the upload joined a batch (or why it was not).
    early: StoredBlob | Exception | None = None


Outcome = list[tuple[PendingFile, ReleaseFile | Exception]]
# What an upload's early blob write gave, per pending file (a keyed store only).
Early = dict[int, "StoredBlob | Exception | None"]


class UploadBatcher:
    def __init__(self, catalog: Catalog, blobstore: BlobStore) -> None:
        self._catalog = catalog
        self._blobstore = blobstore
        self._pending: list[PendingFile] = []
        self._flusher: asyncio.Future[None] | None = None

    async def add(
        self,
        *,
        organization_id: int,
        release_id: int,
        name: str,
        ident: str,
        dist: str | None,
        headers: dict[str, str],
        commit_blob: Callable[[], Awaitable[StoredBlob]],
    ) -> ReleaseFile:
        """Record an uploaded file, its blob first; raises DuplicateReleaseFile or ReleaseGone."""
        pending = PendingFile(
            organization_id=organization_id,
            release_id=release_id,
            name=name,
            ident=ident,
            dist=dist or None,
            headers=headers,
            commit_blob=commit_blob,
            answer=asyncio.get_running_loop().create_future(),
        )
        if not self._blobstore.content_addressed:
            # Each upload's object goes to the store now, beside the others' and beside the
            # batch being committed, so no upload waits on another's network round trips.
            pending.early = await self._store_early(pending)
        self._pending.append(pending)
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        # Shielded: a caller that goes away must not cancel the batch others wait on.
        try:
            return await asyncio.shield(pending.answer)
        except asyncio.CancelledError:
            pending.answer.add_done_callback(_retrieve)  # nobody else will read its outcome
            raise

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                early: Early | None = None
                try:
                    if not self._blobstore.content_addressed:
                        early = {id(item): item.early for item in batch}
                    done = await self._commit(batch, early)
                except BaseException as exc:
                    if early and rolled_back(exc):
                        await self._discard([r for r in early.values() if isinstance(r, StoredBlob)])
                    for item in batch:
                        if not item.answer.done():
                            item.answer.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                    if not isinstance(exc, Exception):
                        raise
                else:
                    # Answers go out only now, after the COMMIT.
                    for item, result in done:
                        if item.answer.done():
                            continue
                        if isinstance(result, Exception):
                            item.answer.set_exception(result)
                        else:
                            item.answer.set_result(result)
        finally:
            self._flusher = None

    async def _store_early(self, item: PendingFile) -> StoredBlob | Exception:
        """A keyed store's write for one upload, before its transaction."""
        try:
            return await item.commit_blob()
        except Exception as exc:  # the upload's own outcome, answered after the batch
            return exc

    async def _commit(self, batch: list[PendingFile], early: Early | None) -> Outcome:
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                async with self._catalog.write(serialized=False) as tx:
                    done, unused = await _commit_batch(tx, batch, early)

                    async def discard(unused: list[StoredBlob] = unused) -> None:
                        await self._discard(unused)

                    tx.after_commit(discard)
                return done
            except (UniqueViolation, ReferenceGone):
                # Another process committed an ident of this batch, or deleted its release,
                # since this transaction looked: the next try sees it.
                if early is None or attempt == BATCH_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _discard(self, blobs: list[StoredBlob]) -> None:
        if blobs:
            await discard_objects(self._blobstore, [b.name for b in blobs])


async def discard_objects(blobstore: BlobStore, names: list[str]) -> None:
    """Best effort: objects no row names (the collector finds any left behind)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(asyncio.to_thread(blobstore.delete, names))


async def _commit_batch(tx: WriteTx, batch: list[PendingFile], early: Early | None) -> tuple[Outcome, list[StoredBlob]]:
    """The batch's rows in `tx`; with `early` (a keyed store's blobs, already written) also the
    objects that no row will name (refused uploads, and copies another upload's row won)."""
    now = utcnow()
    stamp = ts(now)
    assert stamp is not None
    outcome: Outcome = []
    # A release deleted since the caller looked it up takes its uploads with it.
    live = await tx.releases.existing({item.release_id for item in batch})
    outcome.extend((item, ReleaseGone(item.release_id)) for item in batch if item.release_id not in live)
    batch = [item for item in batch if item.release_id in live]
    taken: set[tuple[int, str]] = set()
    for release_id in {item.release_id for item in batch}:
        idents = await tx.files.taken_idents(release_id, [i.ident for i in batch if i.release_id == release_id])
        taken.update((release_id, ident) for ident in idents)
    accepted = []
    for item in batch:
        key = (item.release_id, item.ident)
        if key in taken:
            outcome.append((item, DuplicateReleaseFile(item.name)))
        else:
            taken.add(key)
            accepted.append(item)
    dist_ids: dict[tuple[int, str], int] = {}
    for release_id, dist in {(i.release_id, i.dist) for i in accepted if i.dist}:
        assert dist is not None
        dist_ids[(release_id, dist)] = await tx.files.ensure_dist(release_id, dist, stamp)
    # The blob writes run side by side in worker threads, all before any row is written.
    # A write that fails fails its own upload only; the others in the batch go on.
    results: list[Any]
    if early is None:
        results = await asyncio.gather(*(item.commit_blob() for item in accepted), return_exceptions=True)
    else:
        results = [early[id(item)] for item in accepted]
    written: list[tuple[PendingFile, StoredBlob]] = []
    for item, result in zip(accepted, results, strict=True):
        if isinstance(result, StoredBlob):
            written.append((item, result))
        elif isinstance(result, Exception):
            outcome.append((item, result))
        else:
            raise result  # cancellation: the whole transaction rolls back
    unused = await tx.blobs.add([blob for _, blob in written])
    if early is not None:
        kept = {id(item) for item, _ in written}
        unused += [r for key, r in early.items() if key not in kept and isinstance(r, StoredBlob)]
    await tx.files.insert_many(
        [
            NewReleaseFile(
                organization_id=item.organization_id,
                release_id=item.release_id,
                dist_id=dist_ids[(item.release_id, item.dist)] if item.dist else None,
                name=item.name,
                ident=item.ident,
                headers=item.headers,
                sha1=blob.sha1,
                size=blob.size,
                blob_sha1=blob.sha1,
                date_created=stamp,
            )
            for item, blob in written
        ]
    )
    ids: dict[tuple[int, str], int] = {}
    for release_id in {item.release_id for item, _ in written}:
        found = await tx.files.taken_idents(release_id, [i.ident for i, _ in written if i.release_id == release_id])
        ids.update(((release_id, ident), file_id) for ident, file_id in found.items())
    for item, blob in written:
        record = ReleaseFile(
            id=ids[(item.release_id, item.ident)],
            release_id=item.release_id,
            name=item.name,
            dist=item.dist,
            headers=item.headers,
            size=blob.size,
            sha1=blob.sha1,
            date_created=now,
            blob_sha1=blob.sha1,
        )
        outcome.append((item, record))
    return outcome, unused


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
