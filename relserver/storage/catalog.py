"""The catalog seam (DESIGN D8): metadata in units of work.

`read()` and `write()` each give a transaction carrying one small repository per aggregate
(`storage.sql.repos`); a use case that spans several statements runs them in one transaction.
A write transaction takes `after_commit` callbacks (deleting freed blobs, say), which run only
once its rows are durable. Engines: SQLite (`storage.sql.sqlite`); the repositories' SQL is
shared by every SQL engine, which brings its own connections, dialect and migrations.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ..models import CatalogCheck
from .sql.dialect import ReferenceGone, UniqueViolation, UnstorableText
from .sql.repos import DuplicateReleaseFile, NewReleaseFile, ReadTx, ReleaseGone, WriteTx

__all__ = [
    "Catalog",
    "CatalogUnavailable",
    "CommitUncertain",
    "DuplicateReleaseFile",
    "NewReleaseFile",
    "ReadTx",
    "ReferenceGone",
    "ReleaseGone",
    "UniqueViolation",
    "UnstorableText",
    "WriteTx",
]


class CatalogUnavailable(RuntimeError):
    """The configured catalog cannot be used (unreachable, refused, newer); one line says why."""


class CommitUncertain(RuntimeError):
    """The connection failed during COMMIT: the transaction may or may not have committed."""


def rolled_back(exc: BaseException) -> bool:
    """Whether a write that raised `exc` surely left nothing committed. A cancelled write may
    still commit (its COMMIT is shielded), and so may one whose connection failed during
    COMMIT; what such a write named must be kept (the collector finds what no row names)."""
    return isinstance(exc, Exception) and not isinstance(exc, CommitUncertain)


class Catalog(Protocol):
    """Where metadata lives; every method is safe to call concurrently once it is open."""

    # Whether other relserver processes may use this catalog at the same time (PostgreSQL);
    # SQLite's is this process's alone, behind the data dir's lock.
    shared: bool

    async def open(self) -> None:
        """Connect and migrate; raises CatalogUnavailable with a one-line reason."""
        ...

    def read(self) -> AbstractAsyncContextManager[ReadTx]:
        """Reads; may run beside writes and sees only committed rows."""
        ...

    def write(self, *, serialized: bool = True) -> AbstractAsyncContextManager[WriteTx]:
        """A transaction that commits when the block ends and rolls back when it raises;
        then its after-commit callbacks run.

        `serialized` (the default): no other serialized write runs at the same time, in any
        process, so a check-then-act use case means what it says. False: constraints and
        `ON CONFLICT` decide this write's races (a shared catalog then runs it beside others;
        SQLite's single writer serializes every write anyway)."""
        ...

    async def check(self) -> CatalogCheck:
        """The catalog's own consistency, read-only (`relserver check`)."""
        ...

    async def close(self) -> None: ...
