"""Chunk upload: checksums checked, then the chunks committed as blobs the organization owns."""

from __future__ import annotations

import asyncio

from ..ingest.chunks import ReceivedChunk, check_checksums
from ..models import Organization
from ..storage.blobs import StagedBlob
from .context import Backend
from .scope import provision


async def store_chunks(backend: Backend, org: Organization | None, org_ref: str, chunks: list[ReceivedChunk]) -> None:
    """Check every checksum, then commit the chunks as blobs the organization owns (creating
    it on first use only now that the chunks are known to be good)."""
    try:
        check_checksums(chunks)
        if not chunks:
            return
        org, _ = await provision(backend, org, org_ref)
        blobs = [c.blob for c in chunks]
        async with backend.catalog.write() as tx:
            # Bytes before rows, inside the transaction: no delete can free them in between.
            await asyncio.to_thread(backend.blobstore.promote_many, [(c.temp, c.blob) for c in chunks])
            await tx.blobs.add(blobs)
            await tx.chunks.own(org.id, blobs)
    finally:
        leftovers = [c.temp for c in chunks if not c.temp.consumed]
        if leftovers:
            await asyncio.to_thread(_discard_temps, leftovers)


def _discard_temps(temps: list[StagedBlob]) -> None:
    for temp in temps:
        temp.discard()
