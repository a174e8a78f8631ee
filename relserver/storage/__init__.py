"""The two storage seams (DESIGN D8). Nothing here knows HTTP or Sentry's wire format.

- `storage.catalog`: metadata as units of work (read and write transactions carrying one
  repository per aggregate); the SQLite engine is `storage.sql.sqlite`, and every SQL statement
  relserver runs is in `storage.sql`.
- `storage.blobs`: bytes by sha1, with no paths in the interface; the disk engine is
  `storage.blobs.disk`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import Config
from .catalog import Catalog, CatalogUnavailable

# What to run when --database-url names PostgreSQL but its driver is not installed.
POSTGRES_EXTRA = "pip install 'relserver[postgres]'"


def catalog_for(config: Config) -> Catalog:
    """The catalog engine the configuration names (not yet opened)."""
    if config.database_url:
        try:
            from .sql.postgres import PostgresCatalog
        except ImportError:
            raise CatalogUnavailable(f"--database-url needs the PostgreSQL driver: {POSTGRES_EXTRA}") from None
        return PostgresCatalog(config.database_url)
    from .sql.sqlite import SqliteCatalog

    return SqliteCatalog(config.db_path, fsync=config.fsync)


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
