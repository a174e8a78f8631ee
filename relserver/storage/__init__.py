"""The two storage seams (DESIGN D8). Nothing here knows HTTP or Sentry's wire format.

- `storage.catalog`: metadata as units of work (read and write transactions carrying one
  repository per aggregate); the SQLite engine is `storage.sql.sqlite`, and every SQL statement
  relserver runs is in `storage.sql`.
- `storage.blobs`: bytes by sha1, with no paths in the interface; the disk engine is
  `storage.blobs.disk`, the S3 engine `storage.blobs.s3`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from ..config import Config
from .blobs import BlobStore, BlobStoreUnavailable
from .catalog import Catalog, CatalogUnavailable

# What to run when --database-url names PostgreSQL but its driver is not installed.
POSTGRES_EXTRA = "pip install 'relserver[postgres]'"
# What to run when --blob-url names S3 but its client is not installed.
S3_EXTRA = "pip install 'relserver[s3]'"


@asynccontextmanager
async def opened_catalog(config: Config) -> AsyncIterator[Catalog]:
    """The configured catalog, open for the block (the admin commands' one transaction)."""
    catalog = catalog_for(config)
    await catalog.open()
    try:
        yield catalog
    finally:
        await catalog.close()


def catalog_for(config: Config) -> Catalog:
    """The catalog engine the configuration names (not yet opened)."""
    if config.database_url:
        try:
            from .sql.postgres import PostgresCatalog
        except ImportError:
            raise CatalogUnavailable(f"--database-url needs the PostgreSQL driver: {POSTGRES_EXTRA}") from None
        # A disk store on a shared volume names blobs by sha1 and deletes them inline, which
        # needs every write serialized; an S3 store's random keys do not (DESIGN D10).
        return PostgresCatalog(config.database_url, serialize_all=not config.blob_url)
    from .sql.sqlite import SqliteCatalog

    return SqliteCatalog(config.db_path, fsync=config.fsync)


def blobs_for(config: Config, environ: Mapping[str, str] | None = None) -> BlobStore:
    """The blob store engine the configuration names (not yet prepared). An S3 store takes its
    endpoint, region and credentials from the AWS_* variables of `environ` (default: the
    process environment)."""
    if config.blob_url:
        try:
            from .blobs.s3 import S3BlobStore
        except ImportError:
            raise BlobStoreUnavailable(f"--blob-url needs the S3 client: {S3_EXTRA}") from None
        from .blobs.s3_config import S3Settings

        settings = S3Settings.from_environ(os.environ if environ is None else environ)
        return S3BlobStore(config.blob_url, config.tmp_dir, settings)
    from .blobs.disk import DiskBlobStore

    return DiskBlobStore(config.blob_dir, config.tmp_dir, fsync=config.fsync)


def describe_blobs(config: Config, environ: Mapping[str, str] | None = None) -> str:
    """Where the blobs live, for the banner and logs; never a credential."""
    if not config.blob_url:
        return f"disk, {config.blob_dir.resolve()}"
    from .blobs.s3_config import S3Settings, describe

    return describe(config.blob_url, S3Settings.from_environ(os.environ if environ is None else environ))


def describe_catalog(config: Config) -> str:
    """Where the catalog lives, for the banner and logs; never the password."""
    if not config.database_url:
        return f"SQLite, {config.db_path.resolve()}"
    return f"PostgreSQL, {redact(config.database_url)}"


def redact(url: str) -> str:
    """A database URL without its password (and without its query, which may carry one)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    where = f"{host}:{parts.port}" if parts.port else host
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{where}{parts.path}"
