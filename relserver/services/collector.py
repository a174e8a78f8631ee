"""The blob collector of shared engines (DESIGN D10): deleting, after a grace period, blobs
whose last reference went, and objects no row names (what a crash between an upload and its
commit leaves in the bucket).

On PostgreSQL + S3 no use case deletes a blob itself: it stamps the blob row
`unreferenced_at` in the transaction that removed its last reference. Every process runs the
collector every `COLLECT_INTERVAL_SECONDS`. Each pass claims stamped rows older than the grace
period (`--blob-grace-seconds`; `config.BLOB_GRACE_SECONDS` says where its value and floor come
from) with `FOR UPDATE SKIP LOCKED` (so processes never collect the same rows twice, and a row
an upload is re-referencing right now is skipped), re-checks in that transaction that nothing
references them and that nobody re-referenced them meanwhile, deletes the rows, commits, and
only then deletes their objects. Listing the whole bucket for leftovers is costlier, so one
process at a time claims it, at most every `LEFTOVER_SWEEP_SECONDS` (a row in
`maintenance_runs`), and deletes only objects older than the grace period that no row names.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..storage.blobs import BlobStore, BlobStoreUnavailable
from ..storage.catalog import Catalog
from ..storage.sql.dialect import ts

log = logging.getLogger(__name__)

# How often each process looks for collectable blobs: one indexed query when there are none.
COLLECT_INTERVAL_SECONDS = 60.0
# Rows claimed per collector transaction (each is one DELETE; the objects go in one request).
COLLECT_BATCH = 500
# How often one process (whichever claims it) lists the bucket for leftovers.
LEFTOVER_SWEEP_SECONDS = 3600.0
# Names looked up per catalog read during the leftover sweep (S3 lists 1000 keys a page).
LEFTOVER_BATCH = 1000
LEFTOVER_JOB = "leftover-objects"


@dataclass(frozen=True, slots=True)
class CollectReport:
    # Blobs whose rows and objects went.
    blobs: int
    # Objects no row named, older than the grace period.
    leftovers: int


async def collect_blobs(catalog: Catalog, blobstore: BlobStore, *, grace: float, now: datetime | None = None) -> int:
    """Delete blobs stamped unreferenced longer than `grace` seconds ago and still unreferenced;
    how many went."""
    cutoff = ts((now or datetime.now(UTC)) - timedelta(seconds=grace))
    assert cutoff is not None
    total = 0
    while True:
        async with catalog.write(serialized=False) as tx:
            claimed = await tx.blobs.collectable(cutoff, COLLECT_BATCH)
            names = await tx.blobs.collect(claimed, cutoff)
        # After the commit: a row is gone before its object. If this fails, the leftover
        # sweep finds the objects later.
        if names:
            await asyncio.to_thread(blobstore.delete, names)
        total += len(names)
        if len(claimed) < COLLECT_BATCH:
            return total


async def sweep_leftover_objects(
    catalog: Catalog, blobstore: BlobStore, *, grace: float, now: datetime | None = None
) -> int:
    """Delete objects older than `grace` seconds that no blob row names; how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=grace)
    names = await asyncio.to_thread(lambda: list(blobstore.iter_names(older_than=cutoff)))
    deleted = 0
    for start in range(0, len(names), LEFTOVER_BATCH):
        batch = names[start : start + LEFTOVER_BATCH]
        async with catalog.read() as tx:
            named = await tx.blobs.named(batch)
        leftovers = [name for name in batch if name not in named]
        if leftovers:
            await asyncio.to_thread(blobstore.delete, leftovers)
        deleted += len(leftovers)
    return deleted


async def collect(
    catalog: Catalog, blobstore: BlobStore, *, grace: float, now: datetime | None = None, leftovers: bool | None = None
) -> CollectReport:
    """One collector pass: collectable blobs, then (when `leftovers` is None: if this process
    claims this period's run; True: always, as `relserver vacuum` does) the leftover sweep."""
    moment = now or datetime.now(UTC)
    blobs = await collect_blobs(catalog, blobstore, grace=grace, now=moment)
    if leftovers is None:
        async with catalog.write(serialized=False) as tx:
            stamp, next_run = ts(moment), ts(moment + timedelta(seconds=LEFTOVER_SWEEP_SECONDS))
            assert stamp is not None and next_run is not None
            leftovers = await tx.blobs.claim_run(LEFTOVER_JOB, stamp, next_run)
    swept = await sweep_leftover_objects(catalog, blobstore, grace=grace, now=moment) if leftovers else 0
    return CollectReport(blobs=blobs, leftovers=swept)


class Collector:
    """The collector's loop in one process (started only with deferred deletion)."""

    def __init__(self, catalog: Catalog, blobstore: BlobStore, *, grace: float, interval: float) -> None:
        self.catalog = catalog
        self.blobstore = blobstore
        self.grace = grace
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="blob collector")

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                report = await collect(self.catalog, self.blobstore, grace=self.grace)
            except BlobStoreUnavailable as exc:
                log.warning("blob collector: %s", exc)
                continue
            except Exception as exc:
                log.warning("blob collector pass failed: %s: %s", type(exc).__name__, exc)
                continue
            if report.blobs or report.leftovers:
                log.info(
                    "blob collector deleted %d unreferenced blob(s) and %d leftover object(s)",
                    report.blobs,
                    report.leftovers,
                )
