"""What the use cases work on: the configuration, the catalog, the blob store, the group
commit of uploads, and resolve's cache of built source maps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..config import Config
from ..storage.blobs import BlobStore
from ..storage.catalog import Catalog, WriteTx
from .sourcemap_cache import SourceMapCaches
from .upload_batch import UploadBatcher


class Backend:
    """The server's state as the use cases see it (built once per app)."""

    __slots__ = ("blobstore", "catalog", "config", "sourcemaps", "uploads")

    def __init__(self, config: Config, catalog: Catalog, blobstore: BlobStore) -> None:
        self.config = config
        self.catalog = catalog
        self.blobstore = blobstore
        self.uploads = UploadBatcher(catalog)
        # Built SourceMapCaches for resolve, by (minified sha1, map sha1).
        self.sourcemaps = SourceMapCaches(config.resolve_cache_size)


def delete_after_commit(backend: Backend, tx: WriteTx, freed: Iterable[str]) -> None:
    """Delete the bytes of blobs whose rows `tx` removed, once it has committed.

    A crash in between leaves unreferenced bytes, which the start-up sweep removes.
    """
    sha1s = list(freed)
    if sha1s:

        async def delete() -> None:
            await asyncio.to_thread(backend.blobstore.delete, sha1s)

        tx.after_commit(delete)
