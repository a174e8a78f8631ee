"""Chunk upload: checksums checked, then the chunks committed as blobs the organization owns."""

from __future__ import annotations

import asyncio

from ..ingest.chunks import ReceivedChunk, check_checksums
from ..models import Organization
from ..storage.blobs import StagedBlob
from .context import Backend, blob_writes
from .scope import provision


async def store_chunks(backend: Backend, org: Organization | None, org_ref: str, chunks: list[ReceivedChunk]) -> None:
    """Check every checksum, then commit the chunks as blobs the organization owns (creating
    it on first use only now that the chunks are known to be good)."""
    try:
        check_checksums(chunks)
        if not chunks:
            return
        org, _ = await provision(backend, org, org_ref)
        # Constraints decide every race here (one blob row per sha1, one owner row per org
        # and sha1), so on a shared catalog this write needs no lock across processes.
        async with (
            blob_writes(backend, [(c.temp, c.blob) for c in chunks]) as writes,
            backend.catalog.write(serialized=False) as tx,
        ):
            await tx.chunks.own(org.id, await writes.reference(tx))
    finally:
        leftovers = [c.temp for c in chunks if not c.temp.consumed]
        if leftovers:
            await asyncio.to_thread(_discard_temps, leftovers)


def _discard_temps(temps: list[StagedBlob]) -> None:
    for temp in temps:
        temp.discard()
