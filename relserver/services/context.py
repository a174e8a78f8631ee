"""What the use cases work on: the configuration, the store and the blob store."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..config import Config
from ..storage.blobs import BlobStore
from ..storage.sqlite import Store, UnlinkBlobs


@dataclass(frozen=True, slots=True)
class Backend:
    """The server's state as the operations see it."""

    config: Config
    store: Store
    blobstore: BlobStore


def blob_unlinker(backend: Backend) -> UnlinkBlobs:
    async def unlink(sha1s: list[str]) -> None:
        await asyncio.to_thread(backend.blobstore.delete, sha1s)

    return unlink
