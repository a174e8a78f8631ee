"""The catalog's SQLite engine: connections, the single writer, migrations, and the SQLite
spellings (dialect, FTS5 name search, driver errors).

One writer: every write transaction holds an asyncio lock and a `BEGIN IMMEDIATE` on the writer
connection (DESIGN invariant 5), because a transaction spanning several awaits would otherwise
interleave with another coroutine's statements. After-commit callbacks run still under that
lock, so a blob freed by a delete is gone before any later transaction can reference it again.
Reads use a second connection and run beside writes thanks to WAL; each read statement sees
the last committed state.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, cast

import aiosqlite

from ...models import CatalogCheck
from ..catalog import CatalogUnavailable
from .dialect import Dialect, Params, ReferenceGone, Row, UniqueViolation
from .repos import ReadTx, WriteTx, check_rows
from .sqlite_schema import MIGRATIONS

log = logging.getLogger(__name__)

# Shorter search terms cannot use the trigram index and scan the release instead.
_TRIGRAM = 3


def _fts_search(folded: Sequence[str]) -> tuple[str, dict[str, Any]] | None:
    """The release-file name search from the FTS5 trigram index, when every term can use it."""
    # FTS5 reads its query as a C string, so a term holding NUL cannot go to the index.
    if not all(len(q) >= _TRIGRAM and "\x00" not in q for q in folded):
        return None
    # The matches drive the query (CROSS JOIN keeps SQLite from scanning the release in name
    # order instead).
    source = (
        "(SELECT rowid AS match_id FROM release_files_fts WHERE release_files_fts MATCH :fts)"
        " CROSS JOIN release_files ON release_files.id = match_id"
    )
    return source, {"fts": " OR ".join('"' + q.replace('"', '""') + '"' for q in folded)}


SQLITE = Dialect(
    name="sqlite", null_safe_eq="IS", find_function="instr", max_list=500, array_params=False, name_search=_fts_search
)


def _translate(exc: sqlite3.Error) -> NoReturn:
    """SQLite's errors as the catalog's: a unique violation, or a full disk as ENOSPC."""
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        raise UniqueViolation(str(exc)) from exc
    if isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in str(exc):
        raise ReferenceGone(str(exc)) from exc
    if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
        raise OSError(errno.ENOSPC, f"SQLite: {exc}") from exc
    raise exc


class SqliteDb:
    """Statements on one aiosqlite connection; each call is one hop to its thread."""

    __slots__ = ("conn", "dialect")

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.dialect = SQLITE

    async def rows(self, sql: str, params: Params | None = None) -> list[Row]:
        try:
            return cast(list[Row], list(await self.conn.execute_fetchall(sql, params or {})))
        except sqlite3.Error as exc:
            _translate(exc)

    async def row(self, sql: str, params: Params | None = None) -> Row | None:
        found = await self.rows(sql, params)
        return found[0] if found else None

    async def run(self, sql: str, params: Params | None = None) -> int:
        try:
            cursor = await self.conn.execute(sql, params or {})
        except sqlite3.Error as exc:
            _translate(exc)
        return int(cursor.rowcount)

    async def run_many(self, sql: str, params: Iterable[Params]) -> None:
        try:
            await self.conn.executemany(sql, params)
        except sqlite3.Error as exc:
            _translate(exc)


class SqliteCatalog:
    """The SQLite database of one data dir."""

    shared = False

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self._fsync = fsync
        self._lock = asyncio.Lock()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._read_tx: ReadTx | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        self._writer = await self._connect()
        try:
            await self._migrate(self._writer)
            self._reader = await self._connect()
        except BaseException:
            await self.close()
            raise
        self._read_tx = ReadTx(SqliteDb(self._reader))

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None
        self._read_tx = None

    async def __aenter__(self) -> SqliteCatalog:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: no implicit transactions, `write()` says BEGIN IMMEDIATE itself.
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA journal_mode = WAL")
            # FULL makes a commit durable on power loss (DESIGN invariant 2); --no-fsync trades that.
            await conn.execute(f"PRAGMA synchronous = {'FULL' if self._fsync else 'OFF'}")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA busy_timeout = 10000")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        current = await schema_version(conn)
        if current > len(MIGRATIONS):
            raise CatalogUnavailable(
                f"{self.path} has schema version {current}, newer than this relserver ({len(MIGRATIONS)})"
            )
        if current < len(MIGRATIONS):
            log.info("migrating %s from schema %d to %d", self.path, current, len(MIGRATIONS))
        for number in range(current, len(MIGRATIONS)):
            async with self._lock:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in split_statements(MIGRATIONS[number]):
                        await conn.execute(statement)
                    await conn.execute(f"PRAGMA user_version = {number + 1}")
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")

    # --- units of work ----------------------------------------------------------------------

    @asynccontextmanager
    async def read(self) -> AsyncIterator[ReadTx]:
        if self._read_tx is None:
            raise RuntimeError("the catalog is not open")
        yield self._read_tx

    @asynccontextmanager
    async def write(self, *, serialized: bool = True) -> AsyncIterator[WriteTx]:
        """The single writer: lock, BEGIN IMMEDIATE, COMMIT or ROLLBACK, then the after-commit
        callbacks, still under the lock. Keep the body short: every other write waits.
        (`serialized` changes nothing: every write here is the one writer's.)"""
        async with self._lock:
            if self._writer is None:
                raise RuntimeError("the catalog is not open")
            conn = self._writer
            tx = WriteTx(SqliteDb(conn))
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield tx
            except BaseException:
                # Shielded: a cancelled request must still leave the connection usable.
                await asyncio.shield(conn.execute("ROLLBACK"))
                raise
            try:
                await asyncio.shield(conn.execute("COMMIT"))
            except sqlite3.Error as exc:
                await asyncio.shield(conn.execute("ROLLBACK"))
                _translate(exc)
            await tx.run_after_commit()

    async def check(self) -> CatalogCheck:
        """The catalog's own consistency, read-only: what `relserver check` reports."""
        if self._reader is None:
            raise RuntimeError("the catalog is not open")
        integrity = await SqliteDb(self._reader).row("PRAGMA integrity_check")
        async with self.read() as tx:
            return await check_rows(
                tx,
                schema_version=await schema_version(self._reader),
                integrity=str(integrity["integrity_check"]) if integrity else "",
            )


async def schema_version(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0]) if rows else 0


def split_statements(script: str) -> list[str]:
    """Split a migration script into complete statements (triggers keep their inner `;`)."""
    statements, buffer = [], ""
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buffer += line + "\n"
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete statement in a migration: {buffer.strip()[:80]}")
    return statements
