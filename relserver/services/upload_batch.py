"""The group commit of uploads: files that arrive while a write transaction is open are
committed together in the next one (one lock, one BEGIN/COMMIT and one WAL fsync for the lot
under SQLite's single writer). Each caller gets its answer only after that COMMIT, so a 201 is
durable.

Order inside the transaction: which releases still exist and which idents are taken (so a 409
never touches the blob store), then the blobs go into the blob store side by side, then the
rows. A row therefore never exists before its blob; a crash between the two leaves a blob
without a row, which the start-up sweep removes (DESIGN invariant 1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..models import ReleaseFile, StoredBlob
from ..storage.catalog import Catalog, DuplicateReleaseFile, NewReleaseFile, ReleaseGone, WriteTx
from ..storage.sql.dialect import ts, utcnow


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


Outcome = list[tuple[PendingFile, ReleaseFile | Exception]]


class UploadBatcher:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
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
                try:
                    async with self._catalog.write() as tx:
                        done = await _commit_batch(tx, batch)
                except BaseException as exc:
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


async def _commit_batch(tx: WriteTx, batch: list[PendingFile]) -> Outcome:
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
    results: list[Any] = await asyncio.gather(*(item.commit_blob() for item in accepted), return_exceptions=True)
    written: list[tuple[PendingFile, StoredBlob]] = []
    for item, result in zip(accepted, results, strict=True):
        if isinstance(result, StoredBlob):
            written.append((item, result))
        elif isinstance(result, Exception):
            outcome.append((item, result))
        else:
            raise result  # cancellation: the whole transaction rolls back
    await tx.blobs.add([blob for _, blob in written])
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
    return outcome


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
