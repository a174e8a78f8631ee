"""The sweep of leftovers (start-up and `relserver vacuum`): unreferenced blob rows and files,
stale temp files."""

from __future__ import annotations

import asyncio
import logging

from ..storage import blobs
from ..storage.blobs import BlobStore, SweepReport
from ..storage.sqlite import Store

log = logging.getLogger(__name__)


async def sweep_leftovers(store: Store, blobstore: BlobStore) -> SweepReport:
    """Prune unreferenced blob rows, then remove unreferenced blob files and stale temp files.

    Start-up and `relserver vacuum` run this, only while they hold the data dir's lock: with
    no other process on the data dir, every relserver temp file is a leftover of a crash and
    every unreferenced blob one of a delete interrupted mid-way (DESIGN invariants 1, 10).
    """
    pruned, referenced = await store.prune_blob_rows()
    return await asyncio.to_thread(blobs.sweep, blobstore, referenced, blob_rows=pruned)
