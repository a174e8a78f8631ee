"""The catalog's PostgreSQL engine (DESIGN D8): a connection pool, migrations run once under an
advisory lock, and the PostgreSQL spellings (dialect, `$n` parameters, driver errors).

A serialized write (the default) keeps the SQLite engine's discipline, one writer at a time,
across every process on the database: it first takes a session advisory lock (WRITER_LOCK) and
holds it until its after-commit callbacks have run, so check-then-act use cases (is this name
taken? may this release go?) mean the same with N processes as with one. The hot writes (chunk
POSTs, release-file uploads, release creation, the collector) ask for `serialized=False` and
run beside every other write: constraints and `ON CONFLICT` decide their races, and with a
keyed blob store (S3) blobs are never deleted inline but by the collector (DESIGN D10). With
a content-addressed store (a shared disk) blobs are still deleted right after the commit that
freed them, which is only correct under the one writer: `serialize_all` then makes every
write take the lock. Reads run on any pooled connection and see the last commit.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, NoReturn, TypeAlias

import asyncpg

from ...models import CatalogCheck
from ..catalog import CatalogUnavailable, CommitUncertain
from .dialect import Dialect, Params, ReferenceGone, Row, UniqueViolation, UnstorableText
from .postgres_schema import MIGRATIONS
from .repos import ReadTx, WriteTx, check_rows

log = logging.getLogger(__name__)

# A pooled connection (subscripted for the stubs only).
Proxy: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

# Advisory-lock keys (any 64-bit numbers nothing else on the database uses): "rlsv" + a tag.
WRITER_LOCK = 0x726C7376_00000001
MIGRATION_LOCK = 0x726C7376_00000002
# Connections per process: a few readers beside the one writer. asyncpg's default is 10.
POOL_SIZE = 8
# Seconds to wait for the server at start: long enough for a database across a network,
# short enough that a wrong host fails the start instead of hanging it (asyncpg's is 60).
CONNECT_TIMEOUT = 10.0

POSTGRES = Dialect(
    name="postgresql",
    null_safe_eq="IS NOT DISTINCT FROM",
    find_function="strpos",
    # One array parameter carries any number of values.
    max_list=10_000,
    array_params=True,
    like="ILIKE",
    text_holds_nul=False,
    skip_locked=" FOR UPDATE SKIP LOCKED",
    keep_referenced=" FOR KEY SHARE",
)

# `:name` outside quotes, not a `::type` cast.
_NAMED = re.compile(r"'(?:[^']|'')*'|(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


@lru_cache(maxsize=1024)
def render(sql: str) -> tuple[str, tuple[str, ...]]:
    """`:name` parameters as asyncpg's `$n`, once per statement text; the names in `$n` order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)  # a quoted string, as it is
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED.sub(number, sql), tuple(names)


def _args(names: Sequence[str], params: Params | None) -> list[Any]:
    given = params or {}
    return [given[name] for name in names]


def _translate(exc: asyncpg.PostgresError) -> NoReturn:
    if isinstance(exc, asyncpg.UniqueViolationError):
        raise UniqueViolation(str(exc)) from exc
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        raise ReferenceGone(str(exc)) from exc
    if isinstance(exc, asyncpg.DiskFullError):
        raise OSError(errno.ENOSPC, f"PostgreSQL: {exc}") from exc
    raise exc


def _holds_nul(args: Sequence[Any]) -> bool:
    return any(isinstance(a, str) and "\x00" in a for a in args)


def _refuse_nul(args: Sequence[Any]) -> None:
    if _holds_nul(args):
        raise UnstorableText("PostgreSQL cannot store text holding NUL")


def _rowcount(status: str) -> int:
    """asyncpg's command status (`UPDATE 3`, `INSERT 0 1`) as a row count."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgDb:
    """Statements on one pooled connection."""

    __slots__ = ("conn", "dialect")

    def __init__(self, conn: Proxy | asyncpg.Connection[Any]) -> None:
        self.conn = conn
        self.dialect = POSTGRES

    async def rows(self, sql: str, params: Params | None = None) -> list[Row]:
        text, names = render(sql)
        args = _args(names, params)
        if _holds_nul(args):
            if text.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
                raise UnstorableText("PostgreSQL cannot store text holding NUL")
            # PostgreSQL's text cannot hold NUL, so no stored value equals or contains one
            # (every read here tests its parameters positively).
            return []
        try:
            return list(await self.conn.fetch(text, *args))
        except asyncpg.PostgresError as exc:
            _translate(exc)

    async def row(self, sql: str, params: Params | None = None) -> Row | None:
        found = await self.rows(sql, params)
        return found[0] if found else None

    async def run(self, sql: str, params: Params | None = None) -> int:
        text, names = render(sql)
        args = _args(names, params)
        _refuse_nul(args)
        try:
            return _rowcount(await self.conn.execute(text, *args))
        except asyncpg.PostgresError as exc:
            _translate(exc)

    async def run_many(self, sql: str, params: Iterable[Params]) -> None:
        text, names = render(sql)

        def checked(p: Params) -> list[Any]:
            args = _args(names, p)
            _refuse_nul(args)
            return args

        try:
            await self.conn.executemany(text, (checked(p) for p in params))
        except asyncpg.PostgresError as exc:
            _translate(exc)


class PostgresCatalog:
    """The catalog in a PostgreSQL database, shared by any number of relserver processes."""

    shared = True

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE, serialize_all: bool = False) -> None:
        self.url = url
        self._pool_size = pool_size
        # Every write takes the writer lock, even those that ask not to (a content-addressed
        # blob store, whose blobs are deleted right after the commit that freed them).
        self.serialize_all = serialize_all
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        # Writers of this process queue here instead of each holding a pooled connection
        # while they wait for the database-wide lock.
        self._lock = asyncio.Lock()
        # Server pids of the connections that may still hold a session advisory lock.
        self._may_hold_lock: set[int] = set()

    async def open(self) -> None:
        from .. import redact

        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self._pool_size, timeout=CONNECT_TIMEOUT, reset=self._reset
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CatalogUnavailable(f"cannot use the PostgreSQL database {redact(self.url)}: {reason}") from None
        try:
            async with self._pool.acquire() as conn:
                await self._migrate(conn)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> PostgresCatalog:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _reset(self, conn: asyncpg.Connection[Any]) -> None:
        """The pool's reset on release, after asyncpg's own rollback of an open transaction:
        the full reset query only for a connection whose advisory unlock did not run.

        asyncpg's reset query (advisory locks, cursors, LISTEN, settings) costs a round trip
        and 0.1-0.2 ms of this process's CPU per acquire (measured), and most of PostgreSQL's
        CPU per small upload; relserver leaves none of that session state but the advisory
        lock of a serialized write or a migration."""
        pid = conn.get_server_pid()
        if pid in self._may_hold_lock:
            self._may_hold_lock.discard(pid)
            await conn.execute(conn.get_reset_query())

    @asynccontextmanager
    async def _advisory_lock(self, conn: Proxy, key: int) -> AsyncIterator[None]:
        """A session advisory lock held for the block; a connection left holding it (its unlock
        failed or was cancelled) gets the full reset when the pool takes it back."""
        pid = conn.get_server_pid()
        self._may_hold_lock.add(pid)
        await conn.execute("SELECT pg_advisory_lock($1)", key)
        try:
            yield
        finally:
            await asyncio.shield(conn.execute("SELECT pg_advisory_unlock($1)", key))
            self._may_hold_lock.discard(pid)

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise RuntimeError("the catalog is not open")
        return self._pool

    async def _migrate(self, conn: Proxy) -> None:
        """Every process may start at once: the first to take the lock migrates, the rest see
        the version it left."""
        async with self._advisory_lock(conn, MIGRATION_LOCK):
            await conn.execute("CREATE TABLE IF NOT EXISTS relserver_schema (version INTEGER NOT NULL)")
            current = await schema_version(conn)
            if current > len(MIGRATIONS):
                raise CatalogUnavailable(
                    f"the database has schema version {current}, newer than this relserver ({len(MIGRATIONS)})"
                )
            for number in range(current, len(MIGRATIONS)):
                log.info("migrating the PostgreSQL catalog from schema %d to %d", number, number + 1)
                async with conn.transaction():
                    await conn.execute(MIGRATIONS[number])
                    await conn.execute("DELETE FROM relserver_schema")
                    await conn.execute("INSERT INTO relserver_schema (version) VALUES ($1)", number + 1)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[ReadTx]:
        async with self.pool.acquire() as conn:
            yield ReadTx(PgDb(conn))

    @asynccontextmanager
    async def write(self, *, serialized: bool = True) -> AsyncIterator[WriteTx]:
        """A transaction, COMMIT or ROLLBACK, then the after-commit callbacks; a serialized
        one inside the writer lock (this process's, then the database's), released only after
        the callbacks."""
        if not (serialized or self.serialize_all):
            async with self.pool.acquire() as conn, self._transaction(conn) as tx:
                yield tx
            return
        async with (
            self._lock,
            self.pool.acquire() as conn,
            self._advisory_lock(conn, WRITER_LOCK),
            self._transaction(conn) as tx,
        ):
            yield tx

    @asynccontextmanager
    async def _transaction(self, conn: Proxy) -> AsyncIterator[WriteTx]:
        tx = WriteTx(PgDb(conn))
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield tx
        except BaseException:
            await asyncio.shield(transaction.rollback())
            raise
        try:
            await asyncio.shield(transaction.commit())
        except asyncpg.PostgresError as exc:
            _translate(exc)
        except (OSError, asyncpg.InterfaceError) as exc:
            raise CommitUncertain(f"the PostgreSQL connection failed during COMMIT: {exc}") from exc
        await tx.run_after_commit()

    async def check(self) -> CatalogCheck:
        """The catalog's own consistency, read-only (PostgreSQL checks its pages itself)."""
        async with self.pool.acquire() as conn:
            version = await schema_version(conn)
        async with self.read() as tx:
            return await check_rows(tx, schema_version=version, integrity="ok")


async def schema_version(conn: Proxy) -> int:
    value = await conn.fetchval("SELECT max(version) FROM relserver_schema")
    return int(value) if value is not None else 0
