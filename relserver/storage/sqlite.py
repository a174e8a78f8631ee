"""The catalog's SQLite engine: schema, migrations, and every query relserver runs.

One writer: every write goes through `_write()`, which holds an asyncio lock and a
`BEGIN IMMEDIATE` transaction on the writer connection (DESIGN invariant 5); a transaction
spanning several awaits would otherwise interleave with another coroutine's statements.
Reads use a second connection and run beside writes thanks to WAL. Returns records from
`models`, raises the plain exceptions below; knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from ..models import (
    ArtifactBundle,
    AssembleTask,
    BundleFile,
    CatalogCheck,
    Deploy,
    NewBundleFile,
    Organization,
    Project,
    Release,
    ReleaseFile,
    ReleaseView,
    StoredBlob,
    Token,
    ZipRange,
)

log = logging.getLogger(__name__)


# Moves committed temp files into the blob store (called under the write lock, before rows).
CommitBlobs = Callable[[], Awaitable[None]]
# Sentry's ident for (name, dist); passed in so the store stays free of wire rules.
IdentFor = Callable[[str, str | None], str]
# Removes blob files from disk, given their sha1s (the blob store, via a worker thread).
UnlinkBlobs = Callable[[list[str]], Awaitable[None]]


@dataclass(slots=True)
class _PendingFile:
    """An upload waiting for the next group commit."""

    organization_id: int
    release_id: int
    name: str
    ident: str
    dist: str | None
    headers: dict[str, str]
    commit_blob: Callable[[], Awaitable[StoredBlob]]
    answer: asyncio.Future[ReleaseFile]


class DuplicateReleaseFile(Exception):
    """A release file with this (release, name, dist) — Sentry's ident — already exists."""


class ReleaseGone(Exception):
    """The release was deleted between the caller's lookup and the write (raised by the
    methods that take a `release_id` and write rows under it)."""


# Each entry is one migration; PRAGMA user_version records how many have run.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE organizations (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        date_created TEXT NOT NULL
    );
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        slug TEXT NOT NULL,
        name TEXT NOT NULL,
        platform TEXT,
        date_created TEXT NOT NULL,
        UNIQUE (organization_id, slug)
    );
    CREATE TABLE releases (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        ref TEXT,
        url TEXT,
        user_agent TEXT,
        date_created TEXT NOT NULL,
        date_released TEXT,
        UNIQUE (organization_id, version)
    );
    CREATE TABLE release_projects (
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        PRIMARY KEY (release_id, project_id)
    );
    CREATE INDEX release_projects_by_project ON release_projects (project_id);
    CREATE INDEX releases_by_date ON releases (organization_id, date_created, id);
    CREATE TABLE dists (
        id INTEGER PRIMARY KEY,
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        date_created TEXT NOT NULL,
        UNIQUE (release_id, name)
    );
    CREATE TABLE blobs (
        sha1 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        date_created TEXT NOT NULL
    );
    -- Sentry's ReleaseFile: unique per (release, ident), ident = sha1(name [+ \\0\\0 + dist]).
    CREATE TABLE release_files (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        dist_id INTEGER REFERENCES dists(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        -- casefold(name), for Sentry's case-insensitive `query` filter without a Python UDF.
        name_folded TEXT NOT NULL,
        ident TEXT NOT NULL,
        blob_sha1 TEXT NOT NULL REFERENCES blobs(sha1),
        headers TEXT NOT NULL,
        date_created TEXT NOT NULL,
        UNIQUE (release_id, ident)
    );
    -- Covers the list's ORDER BY so a deep OFFSET skips index entries, not rows.
    CREATE INDEX release_files_by_name ON release_files (release_id, name, id);
    CREATE INDEX release_files_by_blob ON release_files (blob_sha1);
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        scopes TEXT NOT NULL,
        organization_slug TEXT,
        kind TEXT NOT NULL,
        last_characters TEXT NOT NULL,
        date_created TEXT NOT NULL,
        date_revoked TEXT
    );
    """,
    """
    -- Chunks (blobs) an organization uploaded: an org can only assemble its own (chunk.py).
    CREATE TABLE chunk_owners (
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        sha1 TEXT NOT NULL REFERENCES blobs(sha1),
        date_created TEXT NOT NULL,
        PRIMARY KEY (organization_id, sha1)
    );
    CREATE INDEX chunk_owners_by_sha1 ON chunk_owners (sha1);
    -- Assembly states, persisted so polling works across a restart (Sentry keeps them in a cache).
    CREATE TABLE assemble_tasks (
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        checksum TEXT NOT NULL,
        state TEXT NOT NULL,
        detail TEXT,
        request TEXT NOT NULL,
        date_updated TEXT NOT NULL,
        PRIMARY KEY (organization_id, kind, checksum)
    );
    CREATE TABLE artifact_bundles (
        id INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        bundle_id TEXT NOT NULL,
        checksum TEXT NOT NULL,
        release TEXT,
        dist TEXT,
        file_count INTEGER NOT NULL,
        date_created TEXT NOT NULL,
        date_modified TEXT NOT NULL,
        UNIQUE (organization_id, bundle_id)
    );
    CREATE INDEX artifact_bundles_by_release ON artifact_bundles (organization_id, release, dist);
    CREATE INDEX artifact_bundles_by_checksum ON artifact_bundles (organization_id, checksum);
    CREATE TABLE artifact_bundle_projects (
        artifact_bundle_id INTEGER NOT NULL REFERENCES artifact_bundles(id) ON DELETE CASCADE,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        PRIMARY KEY (artifact_bundle_id, project_id)
    );
    CREATE INDEX artifact_bundle_projects_by_project ON artifact_bundle_projects (project_id);
    -- One member of a bundle; its bytes are a blob of their own, so downloads need no unzip.
    CREATE TABLE artifact_bundle_files (
        id INTEGER PRIMARY KEY,
        artifact_bundle_id INTEGER NOT NULL REFERENCES artifact_bundles(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        url TEXT NOT NULL,
        url_folded TEXT NOT NULL,
        file_type TEXT,
        headers TEXT NOT NULL,
        debug_id TEXT,
        blob_sha1 TEXT NOT NULL REFERENCES blobs(sha1),
        UNIQUE (artifact_bundle_id, path)
    );
    CREATE INDEX artifact_bundle_files_by_url ON artifact_bundle_files (artifact_bundle_id, url);
    CREATE INDEX artifact_bundle_files_by_debug_id ON artifact_bundle_files (debug_id);
    CREATE INDEX artifact_bundle_files_by_blob ON artifact_bundle_files (blob_sha1);
    CREATE TABLE deploys (
        id INTEGER PRIMARY KEY,
        release_id INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        environment TEXT NOT NULL,
        name TEXT,
        url TEXT,
        date_started TEXT,
        date_finished TEXT NOT NULL
    );
    """,
    """
    -- Substring search over names (the list's `query`) from a trigram index instead of a scan.
    CREATE VIRTUAL TABLE release_files_fts USING fts5(
        name_folded, content='release_files', content_rowid='id', tokenize='trigram'
    );
    CREATE TRIGGER release_files_fts_insert AFTER INSERT ON release_files BEGIN
        INSERT INTO release_files_fts (rowid, name_folded) VALUES (new.id, new.name_folded);
    END;
    CREATE TRIGGER release_files_fts_delete AFTER DELETE ON release_files BEGIN
        INSERT INTO release_files_fts (release_files_fts, rowid, name_folded)
        VALUES ('delete', old.id, old.name_folded);
    END;
    CREATE TRIGGER release_files_fts_rename AFTER UPDATE OF name_folded ON release_files BEGIN
        INSERT INTO release_files_fts (release_files_fts, rowid, name_folded)
        VALUES ('delete', old.id, old.name_folded);
        INSERT INTO release_files_fts (rowid, name_folded) VALUES (new.id, new.name_folded);
    END;
    INSERT INTO release_files_fts (release_files_fts) VALUES ('rebuild');
    """,
    """
    -- Bundles stored whole and indexed (DESIGN D9): a member's content identity (sha1, size)
    -- is its own; its bytes are the blob `blob_sha1`, which is now the bundle's zip, read at
    -- data_offset (compressed_size bytes, zip method `compression`, CRC-32 `crc`). Members of
    -- older data dirs keep a blob of their own and no offset.
    ALTER TABLE artifact_bundle_files ADD COLUMN sha1 TEXT;
    ALTER TABLE artifact_bundle_files ADD COLUMN size INTEGER;
    ALTER TABLE artifact_bundle_files ADD COLUMN data_offset INTEGER;
    ALTER TABLE artifact_bundle_files ADD COLUMN compressed_size INTEGER;
    ALTER TABLE artifact_bundle_files ADD COLUMN compression INTEGER;
    ALTER TABLE artifact_bundle_files ADD COLUMN crc INTEGER;
    UPDATE artifact_bundle_files
    SET sha1 = blob_sha1, size = (SELECT size FROM blobs WHERE blobs.sha1 = artifact_bundle_files.blob_sha1);
    """,
    """
    -- Release bundles stored whole too (DESIGN D9): a release file's content identity is its
    -- own (sha1, size); its bytes are `blob_sha1`, its own blob or its bundle's zip at
    -- data_offset. Files of older data dirs have their own blob and no offset.
    ALTER TABLE release_files ADD COLUMN sha1 TEXT;
    ALTER TABLE release_files ADD COLUMN size INTEGER;
    ALTER TABLE release_files ADD COLUMN data_offset INTEGER;
    ALTER TABLE release_files ADD COLUMN compressed_size INTEGER;
    ALTER TABLE release_files ADD COLUMN compression INTEGER;
    ALTER TABLE release_files ADD COLUMN crc INTEGER;
    UPDATE release_files
    SET sha1 = blob_sha1, size = (SELECT size FROM blobs WHERE blobs.sha1 = release_files.blob_sha1);
    -- The list's `checksum` filter.
    CREATE INDEX release_files_by_sha1 ON release_files (release_id, sha1);
    """,
)

# A blob is in use while any of these reference it; the rest may be deleted.
_BLOB_UNREFERENCED = """
    NOT EXISTS (SELECT 1 FROM release_files WHERE blob_sha1 = blobs.sha1)
    AND NOT EXISTS (SELECT 1 FROM artifact_bundle_files WHERE blob_sha1 = blobs.sha1)
    AND NOT EXISTS (SELECT 1 FROM chunk_owners WHERE sha1 = blobs.sha1)
    AND NOT EXISTS (SELECT 1 FROM artifact_bundles WHERE checksum = blobs.sha1)
"""

# Every sha1 a row says holds bytes; the same four references as _BLOB_UNREFERENCED.
_REFERENCED_BLOBS = """
    SELECT blob_sha1 FROM release_files
    UNION SELECT blob_sha1 FROM artifact_bundle_files
    UNION SELECT sha1 FROM chunk_owners
    UNION SELECT checksum FROM artifact_bundles
"""

_RELEASE_COLUMNS = "id, organization_id, version, status, ref, url, user_agent, date_created, date_released"
_PROJECT_COLUMNS = "id, organization_id, slug, name, platform, date_created"
_FILE_SELECT = """
    SELECT f.id, f.release_id, f.name, d.name, f.headers, f.size, f.sha1, f.date_created,
           f.blob_sha1, f.data_offset, f.compressed_size, f.compression, f.crc
    FROM release_files f
    LEFT JOIN dists d ON d.id = f.dist_id
"""
_TOKEN_COLUMNS = "id, label, scopes, organization_slug, kind, last_characters, date_created, date_revoked"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _dt_required(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _organization(row: sqlite3.Row | tuple[Any, ...]) -> Organization:
    return Organization(id=row[0], slug=row[1], name=row[2], date_created=_dt_required(row[3]))


def _project(row: sqlite3.Row | tuple[Any, ...]) -> Project:
    return Project(
        id=row[0],
        organization_id=row[1],
        slug=row[2],
        name=row[3],
        platform=row[4],
        date_created=_dt_required(row[5]),
    )


def _release(row: sqlite3.Row | tuple[Any, ...]) -> Release:
    return Release(
        id=row[0],
        organization_id=row[1],
        version=row[2],
        status=row[3],
        ref=row[4],
        url=row[5],
        user_agent=row[6],
        date_created=_dt_required(row[7]),
        date_released=_dt(row[8]),
    )


def _release_file(row: sqlite3.Row | tuple[Any, ...]) -> ReleaseFile:
    return ReleaseFile(
        id=row[0],
        release_id=row[1],
        name=row[2],
        dist=row[3],
        headers=json.loads(row[4]),
        size=row[5],
        sha1=row[6],
        date_created=_dt_required(row[7]),
        blob_sha1=row[8],
        zip_range=_zip_range(row[9:13]),
    )


def _zip_range(columns: Sequence[Any]) -> ZipRange | None:
    """(data_offset, compressed_size, compression, crc), or None for bytes in a blob of their own."""
    offset, compressed_size, compression, crc = columns
    if offset is None:
        return None
    return ZipRange(offset=offset, compressed_size=compressed_size, compression=compression, crc=crc)


_BUNDLE_COLUMNS = "id, organization_id, bundle_id, checksum, release, dist, file_count, date_created, date_modified"
_BUNDLE_FILE_SELECT = """
    SELECT bf.id, bf.artifact_bundle_id, bf.path, bf.url, bf.file_type, bf.headers, bf.debug_id,
           bf.sha1, bf.size, ab.dist, ab.date_modified,
           bf.blob_sha1, bf.data_offset, bf.compressed_size, bf.compression, bf.crc
    FROM artifact_bundle_files bf
    JOIN artifact_bundles ab ON ab.id = bf.artifact_bundle_id
"""


def _bundle(row: sqlite3.Row | tuple[Any, ...]) -> ArtifactBundle:
    return ArtifactBundle(
        id=row[0],
        organization_id=row[1],
        bundle_id=row[2],
        checksum=row[3],
        release=row[4],
        dist=row[5],
        file_count=row[6],
        date_created=_dt_required(row[7]),
        date_modified=_dt_required(row[8]),
    )


def _bundle_file(row: sqlite3.Row | tuple[Any, ...]) -> BundleFile:
    return BundleFile(
        id=row[0],
        artifact_bundle_id=row[1],
        path=row[2],
        url=row[3],
        file_type=row[4],
        headers=json.loads(row[5]),
        debug_id=row[6],
        sha1=row[7],
        size=row[8],
        dist=row[9],
        date_created=_dt_required(row[10]),
        blob_sha1=row[11],
        zip_range=_zip_range(row[12:16]),
    )


def _token(row: sqlite3.Row | tuple[Any, ...]) -> Token:
    return Token(
        id=row[0],
        label=row[1],
        scopes=frozenset(row[2].split()),
        organization=row[3],
        kind=row[4],
        last_characters=row[5],
        date_created=_dt_required(row[6]),
        date_revoked=_dt(row[7]),
    )


def _lookup_column(ref: str) -> str:
    """Newest Sentry accepts an id or a slug wherever a slug goes (all digits → id)."""
    return "id" if ref.isdigit() else "slug"


class Store:
    """The SQLite database of one data dir."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self._fsync = fsync
        self._lock = asyncio.Lock()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # Group commit of uploads (see insert_release_file).
        self._pending_files: list[_PendingFile] = []
        self._file_flusher: asyncio.Future[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        self._writer = await self._connect()
        try:
            await self._migrate(self._writer)
            self._reader = await self._connect()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: no implicit transactions, `_write()` says BEGIN IMMEDIATE itself.
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
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
        row = await _one(conn, "PRAGMA user_version")
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"{self.path} has schema version {current}, newer than this relserver ({len(MIGRATIONS)})"
            )
        if current < len(MIGRATIONS):
            log.info("migrating %s from schema %d to %d", self.path, current, len(MIGRATIONS))
        for number in range(current, len(MIGRATIONS)):
            async with self._lock:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _split_statements(MIGRATIONS[number]):
                        await conn.execute(statement)
                    await conn.execute(f"PRAGMA user_version = {number + 1}")
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")

    async def check(self) -> CatalogCheck:
        """The catalog's own consistency, read-only: what `relserver check` reports."""
        version = await self._fetchone("PRAGMA user_version")
        integrity = await self._fetchone("PRAGMA integrity_check")
        files = await self._fetchone("SELECT count(*) FROM release_files")
        members = await self._fetchone("SELECT count(*) FROM artifact_bundle_files")
        blob_rows = frozenset(row[0] for row in await self._fetchall("SELECT sha1 FROM blobs"))
        referenced = {row[0] for row in await self._fetchall(_REFERENCED_BLOBS)}
        return CatalogCheck(
            schema_version=int(version[0]) if version else 0,
            integrity=str(integrity[0]) if integrity else "",
            release_files=int(files[0]),
            bundle_members=int(members[0]),
            blob_rows=blob_rows,
            dangling=tuple(sorted(referenced - blob_rows)),
        )

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """The single writer: lock, BEGIN IMMEDIATE, commit or roll back. Keep the body short."""
        async with self._lock, self._transaction() as conn:
            yield conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT on the writer connection; the caller holds `_lock`."""
        if self._writer is None:
            raise RuntimeError("store is not open")
        conn = self._writer
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            # Shielded: a cancelled request must still leave the connection usable.
            await asyncio.shield(conn.execute("ROLLBACK"))
            raise
        await asyncio.shield(conn.execute("COMMIT"))

    async def _delete_files_where(
        self, where: str, params: Sequence[Any], unlink_blobs: UnlinkBlobs, *, extra: Sequence[str] = ()
    ) -> int:
        """Delete release-file rows (and `extra` statements), then free blobs nobody references.

        Blob rows go in the same transaction as the file rows; the files on disk go after the
        commit, still under the lock, so no upload can start referencing them in between. A
        crash after the commit leaves unreferenced blobs, which the start-up sweep removes.
        """
        async with self._lock:
            async with self._transaction() as w:
                candidates = [
                    row[0]
                    for row in await _all(
                        w,
                        f"SELECT DISTINCT blob_sha1 FROM release_files WHERE {where}",  # noqa: S608
                        params,
                    )
                ]
                cur = await w.execute(f"DELETE FROM release_files WHERE {where}", params)  # noqa: S608
                deleted = cur.rowcount
                for statement in extra:
                    await w.execute(statement, params)
                freed = await _free_blobs(w, candidates)
            if freed:
                await unlink_blobs(freed)
        return deleted

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await _one(self._r, sql, params)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await _all(self._r, sql, params)

    # --- organizations and projects ---------------------------------------------------------

    async def get_organization(self, ref: str) -> Organization | None:
        sql = f"SELECT id, slug, name, date_created FROM organizations WHERE {_lookup_column(ref)} = ?"  # noqa: S608
        row = await self._fetchone(sql, (ref,))
        return _organization(row) if row else None

    async def ensure_organization(self, slug: str) -> Organization:
        """Get or create by slug."""
        async with self._write() as w:
            await w.execute(
                "INSERT OR IGNORE INTO organizations (slug, name, date_created) VALUES (?, ?, ?)",
                (slug, slug, _ts(utcnow())),
            )
            row = await _one(w, "SELECT id, slug, name, date_created FROM organizations WHERE slug = ?", (slug,))
        assert row is not None
        return _organization(row)

    async def get_project(self, organization_id: int, ref: str) -> Project | None:
        sql = f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE organization_id = ? AND {_lookup_column(ref)} = ?"  # noqa: S608
        row = await self._fetchone(sql, (organization_id, ref))
        return _project(row) if row else None

    async def list_projects(self, organization_id: int) -> list[Project]:
        rows = await self._fetchall(
            f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE organization_id = ? ORDER BY slug",  # noqa: S608
            (organization_id,),
        )
        return [_project(r) for r in rows]

    async def ensure_projects(self, organization_id: int, slugs: Iterable[str]) -> list[Project]:
        """Get or create each project by slug, in the order given."""
        projects = []
        async with self._write() as w:
            for slug in slugs:
                await w.execute(
                    "INSERT OR IGNORE INTO projects (organization_id, slug, name, date_created) VALUES (?, ?, ?, ?)",
                    (organization_id, slug, slug, _ts(utcnow())),
                )
                row = await _one(
                    w,
                    f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE organization_id = ? AND slug = ?",  # noqa: S608
                    (organization_id, slug),
                )
                assert row is not None
                projects.append(_project(row))
        return projects

    # --- releases ---------------------------------------------------------------------------

    async def get_release(self, organization_id: int, version: str) -> Release | None:
        row = await self._fetchone(
            f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE organization_id = ? AND version = ?",  # noqa: S608
            (organization_id, version),
        )
        return _release(row) if row else None

    async def lookup_release_scope(
        self, org_ref: str, project_ref: str | None, version: str
    ) -> tuple[Organization, Project | None, Release, bool] | None:
        """Organization, project, release and whether they are linked, in one query.

        None when any of them does not exist; callers then take the step-by-step path that
        knows about provisioning and Sentry's error order.
        """
        org_col = _lookup_column(org_ref)
        project_col = _lookup_column(project_ref) if project_ref is not None else "id"
        org_cols = "o.id, o.slug, o.name, o.date_created"
        project_cols = ", ".join(f"p.{c.strip()}" for c in _PROJECT_COLUMNS.split(","))
        release_cols = ", ".join(f"r.{c.strip()}" for c in _RELEASE_COLUMNS.split(","))
        row = await self._fetchone(
            f"SELECT {org_cols}, {project_cols}, {release_cols},"  # noqa: S608 -- fixed column names
            " EXISTS (SELECT 1 FROM release_projects rp WHERE rp.release_id = r.id AND rp.project_id = p.id)"
            f" FROM organizations o JOIN releases r ON r.organization_id = o.id AND r.version = ?"
            f" LEFT JOIN projects p ON p.organization_id = o.id AND p.{project_col} = ?"
            f" WHERE o.{org_col} = ?",
            (version, project_ref, org_ref),
        )
        if row is None:
            return None
        org = _organization(row[0:4])
        project = _project(row[4:10]) if row[4] is not None else None
        if project_ref is not None and project is None:
            return None
        release = _release(row[10:19])
        return org, project, release, bool(row[19])

    async def is_release_linked(self, release_id: int, project_id: int) -> bool:
        row = await self._fetchone(
            "SELECT 1 FROM release_projects WHERE release_id = ? AND project_id = ?", (release_id, project_id)
        )
        return row is not None

    async def release_projects(self, release_id: int) -> list[Project]:
        rows = await self._fetchall(
            f"SELECT {', '.join('p.' + c.strip() for c in _PROJECT_COLUMNS.split(','))}"  # noqa: S608
            " FROM projects p JOIN release_projects rp ON rp.project_id = p.id"
            " WHERE rp.release_id = ? ORDER BY p.id",
            (release_id,),
        )
        return [_project(r) for r in rows]

    async def create_release(
        self,
        organization_id: int,
        version: str,
        project_ids: Iterable[int],
        *,
        ref: str | None = None,
        url: str | None = None,
        user_agent: str | None = None,
        date_released: datetime | None = None,
    ) -> tuple[Release, bool]:
        """Get or create the release and link the projects.

        Returns the release and whether anything changed (created, or a project newly
        linked). An existing release keeps its values, as in Sentry's get-or-create.
        """
        async with self._write() as w:
            cur = await w.execute(
                "INSERT OR IGNORE INTO releases"
                " (organization_id, version, ref, url, user_agent, date_created, date_released)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    organization_id,
                    version,
                    ref,
                    url,
                    user_agent,
                    _ts(utcnow()),
                    _ts(date_released),
                ),
            )
            changed = cur.rowcount > 0
            row = await _one(
                w,
                f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE organization_id = ? AND version = ?",  # noqa: S608
                (organization_id, version),
            )
            assert row is not None
            release = _release(row)
            for project_id in project_ids:
                cur = await w.execute(
                    "INSERT OR IGNORE INTO release_projects (release_id, project_id) VALUES (?, ?)",
                    (release.id, project_id),
                )
                changed = changed or cur.rowcount > 0
        return release, changed

    async def list_releases(
        self,
        organization_id: int,
        *,
        project_id: int | None = None,
        in_projects: Sequence[int] = (),
        query: str | None = None,
        status: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[Release]:
        """Newest first: by creation (organization list) or by release date (project list).

        `in_projects` keeps the organization list's order and only releases of those projects.
        """
        where = ["r.organization_id = ?"]
        params: list[Any] = [organization_id]
        order = "r.date_created DESC, r.id DESC"
        if project_id is not None:
            where.append("r.id IN (SELECT release_id FROM release_projects WHERE project_id = ?)")
            params.append(project_id)
            order = "COALESCE(r.date_released, r.date_created) DESC, r.id DESC"
        if in_projects:
            where.append(
                f"r.id IN (SELECT release_id FROM release_projects WHERE project_id IN ({_marks(in_projects)}))"  # noqa: S608
            )
            params += in_projects
        if query:
            where.append("r.version LIKE ? ESCAPE '\\'")
            params.append("%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        if status is not None:
            where.append("r.status = ?")
            params.append(status)
        columns = ", ".join(f"r.{c.strip()}" for c in _RELEASE_COLUMNS.split(","))
        rows = await self._fetchall(
            f"SELECT {columns} FROM releases r WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
            (*params, limit, offset),
        )
        return [_release(r) for r in rows]

    async def update_release(
        self,
        release_id: int,
        *,
        ref: str | None = None,
        url: str | None = None,
        date_released: datetime | None = None,
        status: str | None = None,
        project_ids: Iterable[int] = (),
    ) -> Release:
        """Set the given fields (None leaves a field as it is) and link projects."""
        changes = {"ref": ref, "url": url, "date_released": _ts(date_released), "status": status}
        changes = {k: v for k, v in changes.items() if v is not None}
        async with self._write() as w:
            await _require_release(w, release_id)
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                await w.execute(
                    f"UPDATE releases SET {assignments} WHERE id = ?",  # noqa: S608 -- fixed column names
                    (*changes.values(), release_id),
                )
            await w.executemany(
                "INSERT OR IGNORE INTO release_projects (release_id, project_id) VALUES (?, ?)",
                [(release_id, p) for p in project_ids],
            )
            row = await _one(w, f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE id = ?", (release_id,))  # noqa: S608
        assert row is not None
        return _release(row)

    async def delete_release(self, release_id: int, unlink_blobs: UnlinkBlobs) -> None:
        """The release, its links, dists and files; blobs no other file uses go too."""
        await self._delete_files_where(
            "release_id = ?", (release_id,), unlink_blobs, extra=["DELETE FROM releases WHERE id = ?"]
        )

    # --- release files ----------------------------------------------------------------------

    async def insert_release_file(
        self,
        *,
        organization_id: int,
        release_id: int,
        name: str,
        ident: str,
        dist: str | None,
        headers: dict[str, str],
        commit_blob: Callable[[], Awaitable[StoredBlob]],
    ) -> ReleaseFile:
        """Record an uploaded file, committing its blob first; raises DuplicateReleaseFile.

        Order, all under the write lock: duplicate check (so a 409 never touches the blob
        store), then `commit_blob()` (into the content address, durably; it returns the
        blob's sha1 and size), then the rows. A row therefore never exists before its blob;
        a crash between the two leaves a blob without a row, which the start-up sweep
        removes (DESIGN invariant 1). Holding the lock across the blob write also keeps a
        concurrent delete from removing a shared blob between its existence check and this
        row.

        Uploads that arrive while a transaction is open are committed together in the next
        one (group commit): one lock, one BEGIN/COMMIT and one WAL fsync for the lot. Each
        caller gets its answer only after that COMMIT.
        """
        pending = _PendingFile(
            organization_id=organization_id,
            release_id=release_id,
            name=name,
            ident=ident,
            dist=dist or None,
            headers=headers,
            commit_blob=commit_blob,
            answer=asyncio.get_running_loop().create_future(),
        )
        self._pending_files.append(pending)
        if self._file_flusher is None:
            self._file_flusher = asyncio.ensure_future(self._flush_files())
        # Shielded: a caller that goes away must not cancel the batch others wait on.
        try:
            return await asyncio.shield(pending.answer)
        except asyncio.CancelledError:
            pending.answer.add_done_callback(_retrieve)  # nobody else will read its outcome
            raise

    async def _flush_files(self) -> None:
        try:
            while self._pending_files:
                batch, self._pending_files = self._pending_files, []
                try:
                    done = await self._insert_file_batch(batch)
                except BaseException as exc:
                    for item in batch:
                        if not item.answer.done():
                            item.answer.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                    if not isinstance(exc, Exception):
                        raise
                else:
                    # Answers go out only now, after the COMMIT: a 201 is durable.
                    for item, result in done:
                        if not item.answer.done():
                            if isinstance(result, Exception):
                                item.answer.set_exception(result)
                            else:
                                item.answer.set_result(result)
        finally:
            self._file_flusher = None

    async def _insert_file_batch(self, batch: list[_PendingFile]) -> list[tuple[_PendingFile, ReleaseFile | Exception]]:
        now = utcnow()
        stamp = _ts(now)
        outcome: list[tuple[_PendingFile, ReleaseFile | Exception]] = []
        async with self._write() as w:
            # A release deleted since the caller looked it up takes its uploads with it.
            live = await _existing_releases(w, {item.release_id for item in batch})
            outcome.extend((item, ReleaseGone(item.release_id)) for item in batch if item.release_id not in live)
            batch = [item for item in batch if item.release_id in live]
            taken: set[tuple[int, str]] = set()
            for release_id in {item.release_id for item in batch}:
                idents = [item.ident for item in batch if item.release_id == release_id]
                for start in range(0, len(idents), 500):
                    part = idents[start : start + 500]
                    rows = await _all(w, _IDENTS_SQL.format(columns="ident", marks=_marks(part)), (release_id, *part))
                    taken.update((release_id, r[0]) for r in rows)
            accepted = []
            for item in batch:
                key = (item.release_id, item.ident)
                if key in taken:
                    outcome.append((item, DuplicateReleaseFile(item.name)))
                else:
                    taken.add(key)
                    accepted.append(item)
            dist_ids: dict[tuple[int, str], int] = {}
            for release_id, dist in {(i.release_id, i.dist) for i in accepted if i.dist}:
                assert dist is not None
                await w.execute(
                    "INSERT OR IGNORE INTO dists (release_id, name, date_created) VALUES (?, ?, ?)",
                    (release_id, dist, stamp),
                )
                row = await _one(w, "SELECT id FROM dists WHERE release_id = ? AND name = ?", (release_id, dist))
                dist_ids[(release_id, dist)] = row[0]
            # The blob writes run side by side in worker threads, all before any row is written.
            # A write that fails fails its own upload only; the others in the batch go on.
            results = await asyncio.gather(*(item.commit_blob() for item in accepted), return_exceptions=True)
            written: list[_PendingFile] = []
            blobs: list[StoredBlob] = []
            for item, result in zip(accepted, results, strict=True):
                if isinstance(result, StoredBlob):
                    written.append(item)
                    blobs.append(result)
                elif isinstance(result, Exception):
                    outcome.append((item, result))
                else:
                    raise result  # cancellation: the whole transaction rolls back
            accepted = written
            await w.executemany(
                "INSERT OR IGNORE INTO blobs (sha1, size, date_created) VALUES (?, ?, ?)",
                [(b.sha1, b.size, stamp) for b in blobs],
            )
            await w.executemany(
                "INSERT INTO release_files"
                " (organization_id, release_id, dist_id, name, name_folded, ident, blob_sha1, sha1, size,"
                " headers, date_created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.organization_id,
                        i.release_id,
                        dist_ids.get((i.release_id, i.dist)) if i.dist else None,
                        i.name,
                        i.name.casefold(),
                        i.ident,
                        b.sha1,
                        b.sha1,
                        b.size,
                        json.dumps(i.headers),
                        stamp,
                    )
                    for i, b in zip(accepted, blobs, strict=True)
                ],
            )
            ids: dict[tuple[int, str], int] = {}
            for release_id in {item.release_id for item in accepted}:
                idents = [item.ident for item in accepted if item.release_id == release_id]
                for start in range(0, len(idents), 500):
                    part = idents[start : start + 500]
                    rows = await _all(
                        w, _IDENTS_SQL.format(columns="ident, id", marks=_marks(part)), (release_id, *part)
                    )
                    ids.update(((release_id, r[0]), r[1]) for r in rows)
        for item, blob in zip(accepted, blobs, strict=True):
            record = ReleaseFile(
                id=ids[(item.release_id, item.ident)],
                release_id=item.release_id,
                name=item.name,
                dist=item.dist,
                headers=item.headers,
                size=blob.size,
                sha1=blob.sha1,
                date_created=now,
                blob_sha1=blob.sha1,
            )
            outcome.append((item, record))
        return outcome

    async def dist_exists(self, release_id: int, name: str) -> bool:
        row = await self._fetchone("SELECT 1 FROM dists WHERE release_id = ? AND name = ?", (release_id, name))
        return row is not None

    async def get_release_file(self, release_id: int, file_id: int) -> ReleaseFile | None:
        row = await self._fetchone(f"{_FILE_SELECT} WHERE f.release_id = ? AND f.id = ?", (release_id, file_id))
        return _release_file(row) if row else None

    async def get_release_file_in_project(self, project_id: int, file_id: int) -> ReleaseFile | None:
        row = await self._fetchone(
            f"{_FILE_SELECT} WHERE f.id = ? AND f.release_id IN"  # noqa: S608
            " (SELECT release_id FROM release_projects WHERE project_id = ?)",
            (file_id, project_id),
        )
        return _release_file(row) if row else None

    async def find_release_file(self, release_id: int, ident: str) -> ReleaseFile | None:
        row = await self._fetchone(f"{_FILE_SELECT} WHERE f.release_id = ? AND f.ident = ?", (release_id, ident))
        return _release_file(row) if row else None

    async def list_release_files(
        self,
        release_id: int,
        *,
        offset: int,
        limit: int,
        queries: Sequence[str] = (),
        checksums: Sequence[str] = (),
    ) -> list[ReleaseFile]:
        """A page ordered by name; `queries` match case-insensitively (any), `checksums` exactly."""
        sql, params = release_files_page_sql(
            release_id, offset=offset, limit=limit, queries=queries, checksums=checksums
        )
        return [_release_file(r) for r in await self._fetchall(sql, params)]

    async def rename_release_file(self, release_id: int, file_id: int, name: str, ident_for: IdentFor) -> bool:
        """Rename and recompute the ident from the file's dist; False if there is no such file."""
        async with self._write() as w:
            row = await _one(
                w,
                "SELECT d.name FROM release_files f LEFT JOIN dists d ON d.id = f.dist_id"
                " WHERE f.release_id = ? AND f.id = ?",
                (release_id, file_id),
            )
            if row is None:
                return False
            try:
                await w.execute(
                    "UPDATE release_files SET name = ?, name_folded = ?, ident = ? WHERE id = ?",
                    (name, name.casefold(), ident_for(name, row[0]), file_id),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateReleaseFile(name) from exc
        return True

    async def delete_release_file(self, release_id: int, file_id: int, unlink_blobs: UnlinkBlobs) -> bool:
        deleted = await self._delete_files_where("release_id = ? AND id = ?", (release_id, file_id), unlink_blobs)
        return deleted > 0

    async def delete_release_files(self, release: Release, unlink_blobs: UnlinkBlobs) -> int:
        """Every file the release lists (sentry-cli's `delete --all`): its own files and the
        artifact bundles tied to it, whose members its list shows as archive entries (DESIGN D1).

        One transaction; the bundles go whole, so their own listing never shows an emptied
        bundle. Blob files are unlinked after the commit, still under the lock.
        """
        async with self._lock:
            async with self._transaction() as w:
                bundles = await _all(
                    w,
                    "SELECT id, checksum FROM artifact_bundles WHERE organization_id = ? AND release = ?",
                    (release.organization_id, release.version),
                )
                bundle_pks = [row[0] for row in bundles]
                candidates = {
                    row[0]
                    for row in await _all(
                        w, "SELECT DISTINCT blob_sha1 FROM release_files WHERE release_id = ?", (release.id,)
                    )
                }
                candidates |= {row[1] for row in bundles}
                if bundle_pks:
                    marks = _marks(bundle_pks)
                    members = (
                        f"SELECT DISTINCT blob_sha1 FROM artifact_bundle_files WHERE artifact_bundle_id IN ({marks})"  # noqa: S608
                    )
                    candidates |= {row[0] for row in await _all(w, members, bundle_pks)}
                cur = await w.execute("DELETE FROM release_files WHERE release_id = ?", (release.id,))
                deleted = cur.rowcount
                await w.executemany("DELETE FROM artifact_bundles WHERE id = ?", [(pk,) for pk in bundle_pks])
                freed = await _free_blobs(w, sorted(candidates))
            if freed:
                await unlink_blobs(freed)
        return deleted

    # --- chunks and assembly ----------------------------------------------------------------

    async def add_chunks(self, organization_id: int, blobs: Sequence[StoredBlob], commit_blobs: CommitBlobs) -> None:
        """Commit uploaded chunks to the blob store and record the organization as their owner."""
        now = _ts(utcnow())
        async with self._write() as w:
            await commit_blobs()
            await w.executemany(
                "INSERT OR IGNORE INTO blobs (sha1, size, date_created) VALUES (?, ?, ?)",
                [(b.sha1, b.size, now) for b in blobs],
            )
            await w.executemany(
                "INSERT OR IGNORE INTO chunk_owners (organization_id, sha1, date_created) VALUES (?, ?, ?)",
                [(organization_id, b.sha1, now) for b in blobs],
            )

    async def owned_chunks(self, organization_id: int, sha1s: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(sha1s))
        owned: set[str] = set()
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            rows = await self._fetchall(
                f"SELECT sha1 FROM chunk_owners WHERE organization_id = ? AND sha1 IN ({', '.join('?' * len(batch))})",  # noqa: S608
                (organization_id, *batch),
            )
            owned.update(r[0] for r in rows)
        return owned

    async def chunk_sizes(self, sha1s: Iterable[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(sha1s))
        sizes: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            rows = await self._fetchall(
                f"SELECT sha1, size FROM blobs WHERE sha1 IN ({', '.join('?' * len(batch))})",  # noqa: S608
                batch,
            )
            sizes.update((r[0], r[1]) for r in rows)
        return sizes

    async def get_assemble_task(self, organization_id: int, kind: str, checksum: str) -> AssembleTask | None:
        row = await self._fetchone(
            "SELECT state, detail, date_updated FROM assemble_tasks"
            " WHERE organization_id = ? AND kind = ? AND checksum = ?",
            (organization_id, kind, checksum),
        )
        return AssembleTask(state=row[0], detail=row[1], date_updated=_dt_required(row[2])) if row else None

    async def set_assemble_task(
        self,
        organization_id: int,
        kind: str,
        checksum: str,
        state: str,
        detail: str | None = None,
        request: dict[str, Any] | None = None,
    ) -> None:
        """Record a state; `request` (what to assemble) is kept from the first call that gave it."""
        async with self._write() as w:
            await w.execute(
                "INSERT INTO assemble_tasks (organization_id, kind, checksum, state, detail, request, date_updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (organization_id, kind, checksum) DO UPDATE SET state = excluded.state,"
                " detail = excluded.detail, date_updated = excluded.date_updated,"
                " request = CASE WHEN excluded.request = '{}' THEN request ELSE excluded.request END",
                (organization_id, kind, checksum, state, detail, json.dumps(request or {}), _ts(utcnow())),
            )

    async def unfinished_assemble_tasks(self) -> list[tuple[int, str, str, dict[str, Any]]]:
        """Assemblies a previous process accepted but did not finish: (org id, kind, checksum, request)."""
        rows = await self._fetchall(
            "SELECT organization_id, kind, checksum, request FROM assemble_tasks"
            " WHERE state IN ('created', 'assembling') ORDER BY date_updated"
        )
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    # --- artifact bundles -------------------------------------------------------------------

    async def find_bundle_by_checksum(self, organization_id: int, checksum: str) -> ArtifactBundle | None:
        row = await self._fetchone(
            f"SELECT {_BUNDLE_COLUMNS} FROM artifact_bundles WHERE organization_id = ? AND checksum = ?",  # noqa: S608
            (organization_id, checksum),
        )
        return _bundle(row) if row else None

    async def bundle_project_ids(self, bundle_pk: int) -> set[int]:
        rows = await self._fetchall(
            "SELECT project_id FROM artifact_bundle_projects WHERE artifact_bundle_id = ?", (bundle_pk,)
        )
        return {r[0] for r in rows}

    async def save_artifact_bundle(
        self,
        *,
        organization_id: int,
        bundle_id: str,
        bundle_blob: StoredBlob,
        release: str | None,
        dist: str | None,
        project_ids: Iterable[int],
        files: Sequence[NewBundleFile],
        commit_blobs: CommitBlobs,
        unlink_blobs: UnlinkBlobs,
    ) -> ArtifactBundle:
        """Store a bundle (its zip is `bundle_blob`) and its members; the same bundle id uploaded
        again replaces them."""
        checksum = bundle_blob.sha1
        now = _ts(utcnow())
        async with self._lock:
            async with self._transaction() as w:
                await commit_blobs()
                # The bundle's own zip is a blob too (artifact-lookup serves it), as is each member.
                # The bundle's own zip is a blob (artifact-lookup serves it, indexed members are
                # read from it); members extracted on their own are blobs too.
                own = _distinct_blobs([f for f in files if f.zip_range is None])
                await w.executemany(
                    "INSERT OR IGNORE INTO blobs (sha1, size, date_created) VALUES (?, ?, ?)",
                    [(b.sha1, b.size, now) for b in [bundle_blob, *own]],
                )
                existing = await _one(
                    w,
                    "SELECT id, checksum FROM artifact_bundles WHERE organization_id = ? AND bundle_id = ?",
                    (organization_id, bundle_id),
                )
                candidates: list[str] = []
                if existing is not None:
                    bundle_pk, old_checksum = existing
                    candidates = [
                        r[0]
                        for r in await _all(
                            w,
                            "SELECT DISTINCT blob_sha1 FROM artifact_bundle_files WHERE artifact_bundle_id = ?",
                            (bundle_pk,),
                        )
                    ] + [old_checksum]
                    await w.execute("DELETE FROM artifact_bundle_files WHERE artifact_bundle_id = ?", (bundle_pk,))
                    await w.execute(
                        "UPDATE artifact_bundles SET checksum = ?, release = ?, dist = ?, file_count = ?,"
                        " date_modified = ? WHERE id = ?",
                        (checksum, release, dist, len(files), now, bundle_pk),
                    )
                else:
                    cur = await w.execute(
                        "INSERT INTO artifact_bundles (organization_id, bundle_id, checksum, release, dist, file_count,"
                        " date_created, date_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (organization_id, bundle_id, checksum, release, dist, len(files), now, now),
                    )
                    bundle_pk = cur.lastrowid
                await w.executemany(
                    "INSERT OR IGNORE INTO artifact_bundle_projects (artifact_bundle_id, project_id) VALUES (?, ?)",
                    [(bundle_pk, p) for p in project_ids],
                )
                await w.executemany(
                    "INSERT INTO artifact_bundle_files (artifact_bundle_id, path, url, url_folded, file_type,"
                    " headers, debug_id, blob_sha1, sha1, size, data_offset, compressed_size, compression, crc)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            bundle_pk,
                            f.path,
                            f.url,
                            f.url.casefold(),
                            f.file_type,
                            json.dumps(f.headers),
                            f.debug_id,
                            checksum if f.zip_range else f.blob.sha1,
                            f.blob.sha1,
                            f.blob.size,
                            *(
                                (
                                    f.zip_range.offset,
                                    f.zip_range.compressed_size,
                                    f.zip_range.compression,
                                    f.zip_range.crc,
                                )
                                if f.zip_range
                                else (None, None, None, None)
                            ),
                        )
                        for f in files
                    ],
                )
                freed = await _free_blobs(w, candidates)
                row = await _one(
                    w,
                    f"SELECT {_BUNDLE_COLUMNS} FROM artifact_bundles WHERE id = ?",  # noqa: S608
                    (bundle_pk,),
                )
            if freed:
                await unlink_blobs(freed)
        assert row is not None
        return _bundle(row)

    async def upsert_release_files(
        self,
        *,
        organization_id: int,
        release_id: int,
        dist: str | None,
        bundle_blob: StoredBlob,
        files: Sequence[tuple[str, str, NewBundleFile]],
        commit_blobs: CommitBlobs,
        unlink_blobs: UnlinkBlobs,
    ) -> None:
        """(name, ident, member) rows: replace the content of existing ones, create the rest.

        A member with a `zip_range` is read from the bundle's zip, `bundle_blob`, which is
        stored as a blob; one without has its own blob (DESIGN D9).

        Sentry's release-bundle assembly before release archives (tasks/assemble.py): no 409.
        """
        now = _ts(utcnow())
        async with self._lock:
            async with self._transaction() as w:
                await _require_release(w, release_id)
                await commit_blobs()
                dist_id = None
                if dist:
                    await w.execute(
                        "INSERT OR IGNORE INTO dists (release_id, name, date_created) VALUES (?, ?, ?)",
                        (release_id, dist, now),
                    )
                    dist_row = await _one(
                        w, "SELECT id FROM dists WHERE release_id = ? AND name = ?", (release_id, dist)
                    )
                    assert dist_row is not None
                    dist_id = dist_row[0]
                own = _distinct_blobs([member for _, _, member in files if member.zip_range is None])
                await w.executemany(
                    "INSERT OR IGNORE INTO blobs (sha1, size, date_created) VALUES (?, ?, ?)",
                    [(blob.sha1, blob.size, now) for blob in [bundle_blob, *own]],
                )
                # The zip is a blob only while a file reads from it (an all-extracted one goes).
                candidates = [bundle_blob.sha1]
                for name, ident, member in files:
                    old = await _one(
                        w, "SELECT blob_sha1 FROM release_files WHERE release_id = ? AND ident = ?", (release_id, ident)
                    )
                    if old is not None:
                        candidates.append(old[0])
                    at = member.zip_range
                    await w.execute(
                        "INSERT INTO release_files (organization_id, release_id, dist_id, name, name_folded, ident,"
                        " blob_sha1, sha1, size, data_offset, compressed_size, compression, crc, headers,"
                        " date_created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (release_id, ident) DO UPDATE SET blob_sha1 = excluded.blob_sha1,"
                        " sha1 = excluded.sha1, size = excluded.size, data_offset = excluded.data_offset,"
                        " compressed_size = excluded.compressed_size, compression = excluded.compression,"
                        " crc = excluded.crc, headers = excluded.headers, date_created = excluded.date_created",
                        (
                            organization_id,
                            release_id,
                            dist_id,
                            name,
                            name.casefold(),
                            ident,
                            bundle_blob.sha1 if at else member.blob.sha1,
                            member.blob.sha1,
                            member.blob.size,
                            *((at.offset, at.compressed_size, at.compression, at.crc) if at else (None,) * 4),
                            json.dumps(member.headers),
                            now,
                        ),
                    )
                freed = await _free_blobs(w, candidates)
            if freed:
                await unlink_blobs(freed)

    async def count_release_files_matching(
        self, release_id: int, *, queries: Sequence[str] = (), checksums: Sequence[str] = ()
    ) -> int:
        source, where, params = _release_file_filters(release_id, queries, checksums)
        row = await self._fetchone(f"SELECT count(*) FROM {source} WHERE {where}", params)  # noqa: S608
        return int(row[0])

    async def list_archive_entries(
        self,
        organization_id: int,
        version: str,
        *,
        offset: int,
        limit: int,
        queries: Sequence[str] = (),
        checksums: Sequence[str] = (),
    ) -> list[BundleFile]:
        """Members of the bundles tied to a release, newest bundle per (dist, url); dists first."""
        where = [_LATEST_ENTRY, "ab.organization_id = ?", "ab.release = ?"]
        params: list[Any] = [organization_id, version]
        if queries:
            where.append("(" + " OR ".join("instr(bf.url_folded, ?) > 0" for _ in queries) + ")")
            params += [q.casefold() for q in queries]
        if checksums:
            # Sentry tests archive entries with "value in sha1": a prefix matches (a quirk it has).
            where.append("(" + " OR ".join("instr(bf.sha1, ?) > 0" for _ in checksums) + ")")
            params += list(checksums)
        rows = await self._fetchall(
            f"{_BUNDLE_FILE_SELECT} WHERE {' AND '.join(where)}"
            " ORDER BY ab.dist IS NULL, ab.dist, bf.url LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_bundle_file(r) for r in rows]

    async def get_archive_entry(
        self, organization_id: int, version: str, dist: str | None, url: str
    ) -> BundleFile | None:
        row = await self._fetchone(
            f"{_BUNDLE_FILE_SELECT} WHERE {_LATEST_ENTRY} AND ab.organization_id = ? AND ab.release = ?"
            " AND ab.dist IS ? AND bf.url = ?",
            (organization_id, version, dist, url),
        )
        return _bundle_file(row) if row else None

    async def release_has_dist(self, organization_id: int, release_id: int, version: str, dist: str) -> bool:
        """A dist exists for a release when a file or a bundle names it."""
        if await self.dist_exists(release_id, dist):
            return True
        row = await self._fetchone(
            "SELECT 1 FROM artifact_bundles WHERE organization_id = ? AND release = ? AND dist = ?",
            (organization_id, version, dist),
        )
        return row is not None

    async def delete_archive_entries(
        self, organization_id: int, version: str, dist: str | None, url: str, unlink_blobs: UnlinkBlobs
    ) -> int:
        """Remove a URL from every bundle of the release (Sentry: from the dist's artifact index)."""
        async with self._lock:
            async with self._transaction() as w:
                select = (
                    "SELECT bf.id, bf.blob_sha1, bf.artifact_bundle_id FROM artifact_bundle_files bf"
                    " JOIN artifact_bundles ab ON ab.id = bf.artifact_bundle_id"
                    " WHERE ab.organization_id = ? AND ab.release = ? AND ab.dist IS ? AND bf.url = ?"
                )
                rows = list(await _all(w, select, (organization_id, version, dist, url)))
                await w.executemany("DELETE FROM artifact_bundle_files WHERE id = ?", [(r[0],) for r in rows])
                await w.executemany(
                    "UPDATE artifact_bundles SET file_count ="
                    " (SELECT count(*) FROM artifact_bundle_files WHERE artifact_bundle_id = artifact_bundles.id)"
                    " WHERE id = ?",
                    [(bundle_pk,) for bundle_pk in {r[2] for r in rows}],
                )
                freed = await _free_blobs(w, {r[1] for r in rows})
            if freed:
                await unlink_blobs(freed)
        return len(rows)

    # --- artifact bundles as their own resource ----------------------------------------------

    async def list_artifact_bundles(
        self,
        organization_id: int,
        project_id: int,
        *,
        query: str | None,
        order: str,
        offset: int,
        limit: int,
    ) -> list[ArtifactBundle]:
        """A project's bundles; `query` is a release or dist name, or a bundle or debug id."""
        where = [
            "ab.organization_id = ?",
            "ab.id IN (SELECT artifact_bundle_id FROM artifact_bundle_projects WHERE project_id = ?)",
        ]
        params: list[Any] = [organization_id, project_id]
        if query:
            where.append(
                "(ab.release = ? OR ab.dist = ? OR ab.bundle_id = ?"
                " OR ab.id IN (SELECT artifact_bundle_id FROM artifact_bundle_files WHERE debug_id = ?))"
            )
            params += [query, query, query.lower(), query.lower()]
        columns = ", ".join(f"ab.{c.strip()}" for c in _BUNDLE_COLUMNS.split(","))
        rows = await self._fetchall(
            f"SELECT {columns} FROM artifact_bundles ab WHERE {' AND '.join(where)}"  # noqa: S608 -- fixed fragments
            f" ORDER BY {_BUNDLE_ORDERS[order]} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_bundle(r) for r in rows]

    async def get_artifact_bundle(self, organization_id: int, project_id: int, bundle_id: str) -> ArtifactBundle | None:
        row = await self._fetchone(
            f"SELECT {_BUNDLE_COLUMNS} FROM artifact_bundles WHERE organization_id = ? AND bundle_id = ?"  # noqa: S608
            " AND id IN (SELECT artifact_bundle_id FROM artifact_bundle_projects WHERE project_id = ?)",
            (organization_id, bundle_id, project_id),
        )
        return _bundle(row) if row else None

    async def get_artifact_bundle_by_pk(self, organization_id: int, project_id: int, pk: int) -> ArtifactBundle | None:
        row = await self._fetchone(
            f"SELECT {_BUNDLE_COLUMNS} FROM artifact_bundles WHERE organization_id = ? AND id = ?"  # noqa: S608
            " AND id IN (SELECT artifact_bundle_id FROM artifact_bundle_projects WHERE project_id = ?)",
            (organization_id, pk, project_id),
        )
        return _bundle(row) if row else None

    async def list_bundle_files(
        self, bundle_pk: int, *, query: str | None = None, offset: int = 0, limit: int = 100
    ) -> list[BundleFile]:
        where = ["bf.artifact_bundle_id = ?"]
        params: list[Any] = [bundle_pk]
        if query:
            where.append("(instr(bf.url_folded, ?) > 0 OR instr(bf.debug_id, ?) > 0)")
            params += [query.casefold(), query.lower()]
        rows = await self._fetchall(
            f"{_BUNDLE_FILE_SELECT} WHERE {' AND '.join(where)} ORDER BY bf.path LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_bundle_file(r) for r in rows]

    async def get_bundle_file(self, bundle_pk: int, path: str) -> BundleFile | None:
        row = await self._fetchone(
            f"{_BUNDLE_FILE_SELECT} WHERE bf.artifact_bundle_id = ? AND bf.path = ?",
            (bundle_pk, path),
        )
        return _bundle_file(row) if row else None

    async def bundles_with_debug_id(self, organization_id: int, project_id: int, debug_id: str) -> list[ArtifactBundle]:
        rows = await self._fetchall(
            f"SELECT {', '.join('ab.' + c.strip() for c in _BUNDLE_COLUMNS.split(','))} FROM artifact_bundles ab"  # noqa: S608
            " WHERE ab.organization_id = ?"
            " AND ab.id IN (SELECT artifact_bundle_id FROM artifact_bundle_projects WHERE project_id = ?)"
            " AND ab.id IN (SELECT artifact_bundle_id FROM artifact_bundle_files WHERE debug_id = ?)"
            " ORDER BY ab.date_modified DESC, ab.id DESC LIMIT 1",
            (organization_id, project_id, debug_id),
        )
        return [_bundle(r) for r in rows]

    async def bundles_for_release(
        self, organization_id: int, project_id: int, release: str, dist: str | None, *, url: str | None, limit: int
    ) -> list[ArtifactBundle]:
        where = [
            "ab.organization_id = ?",
            "ab.id IN (SELECT artifact_bundle_id FROM artifact_bundle_projects WHERE project_id = ?)",
            "ab.release = ?",
            "ab.dist IS ?",
        ]
        params: list[Any] = [organization_id, project_id, release, dist]
        if url is not None:
            where.append(
                "ab.id IN (SELECT artifact_bundle_id FROM artifact_bundle_files WHERE instr(url_folded, ?) > 0)"
            )
            params.append(url.casefold())
        rows = await self._fetchall(
            f"SELECT {', '.join('ab.' + c.strip() for c in _BUNDLE_COLUMNS.split(','))} FROM artifact_bundles ab"  # noqa: S608
            f" WHERE {' AND '.join(where)} ORDER BY ab.date_modified DESC, ab.id DESC LIMIT ?",
            (*params, limit),
        )
        return [_bundle(r) for r in rows]

    async def release_files_matching_url(self, release_id: int, url: str, limit: int) -> list[ReleaseFile]:
        rows = await self._fetchall(
            f"{_FILE_SELECT} WHERE f.release_id = ? AND instr(f.name_folded, ?) > 0 ORDER BY f.id LIMIT ?",
            (release_id, url.casefold(), limit),
        )
        return [_release_file(r) for r in rows]

    async def remove_artifact_bundle(
        self, organization_id: int, project_id: int, bundle_id: str, unlink_blobs: UnlinkBlobs
    ) -> bool | None:
        """Unlink the project; delete the bundle when no other project keeps it.

        None: no such bundle; False: it exists but not for this project; True: done.
        """
        async with self._lock:
            async with self._transaction() as w:
                row = await _one(
                    w,
                    "SELECT id, checksum FROM artifact_bundles WHERE organization_id = ? AND bundle_id = ?",
                    (organization_id, bundle_id),
                )
                if row is None:
                    return None
                bundle_pk, checksum = row
                cur = await w.execute(
                    "DELETE FROM artifact_bundle_projects WHERE artifact_bundle_id = ? AND project_id = ?",
                    (bundle_pk, project_id),
                )
                if cur.rowcount == 0:
                    return False
                still_linked = (
                    await _one(w, "SELECT 1 FROM artifact_bundle_projects WHERE artifact_bundle_id = ?", (bundle_pk,))
                    is not None
                )
                freed: list[str] = []
                if not still_linked:
                    candidates = [
                        r[0]
                        for r in await _all(
                            w,
                            "SELECT DISTINCT blob_sha1 FROM artifact_bundle_files WHERE artifact_bundle_id = ?",
                            (bundle_pk,),
                        )
                    ] + [checksum]
                    await w.execute("DELETE FROM artifact_bundles WHERE id = ?", (bundle_pk,))
                    freed = await _free_blobs(w, candidates)
            if freed:
                await unlink_blobs(freed)
        return True

    # --- deploys ----------------------------------------------------------------------------

    async def release_view(self, release: Release) -> ReleaseView:
        """The release with its projects, its number of deploys and the latest one."""
        count = await self._fetchone("SELECT count(*) FROM deploys WHERE release_id = ?", (release.id,))
        latest = await self.list_deploys(release.id, limit=1)
        return ReleaseView(
            release=release,
            projects=await self.release_projects(release.id),
            deploy_count=int(count[0]),
            last_deploy=latest[0] if latest else None,
        )

    async def add_deploy(
        self,
        release_id: int,
        *,
        environment: str,
        name: str | None,
        url: str | None,
        date_started: datetime | None,
        date_finished: datetime,
    ) -> Deploy:
        async with self._write() as w:
            await _require_release(w, release_id)
            cur = await w.execute(
                "INSERT INTO deploys (release_id, environment, name, url, date_started, date_finished)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (release_id, environment, name, url, _ts(date_started), _ts(date_finished)),
            )
            deploy_id = cur.lastrowid
        assert deploy_id is not None
        return Deploy(
            id=deploy_id,
            environment=environment,
            name=name,
            url=url,
            date_started=date_started,
            date_finished=date_finished,
        )

    async def list_deploys(self, release_id: int, *, offset: int = 0, limit: int = 100) -> list[Deploy]:
        rows = await self._fetchall(
            "SELECT id, environment, name, url, date_started, date_finished FROM deploys WHERE release_id = ?"
            " ORDER BY date_finished DESC, id DESC LIMIT ? OFFSET ?",
            (release_id, limit, offset),
        )
        return [
            Deploy(
                id=r[0], environment=r[1], name=r[2], url=r[3], date_started=_dt(r[4]), date_finished=_dt_required(r[5])
            )
            for r in rows
        ]

    # --- blobs ------------------------------------------------------------------------------

    async def prune_blob_rows(self) -> tuple[int, set[str]]:
        """Drop blob rows no file references; return how many went and the sha1s still referenced."""
        async with self._write() as w:
            cursor = await w.execute(f"DELETE FROM blobs WHERE {_BLOB_UNREFERENCED}")  # noqa: S608 -- fixed SQL
            pruned = cursor.rowcount
            return pruned, {row[0] for row in await _all(w, "SELECT sha1 FROM blobs")}

    # --- tokens -----------------------------------------------------------------------------

    async def count_tokens(self) -> int:
        row = await self._fetchone("SELECT count(*) FROM tokens")
        return int(row[0])

    async def insert_token(
        self,
        *,
        token_hash: str,
        label: str,
        scopes: Iterable[str],
        organization: str | None,
        kind: str,
        last_characters: str,
    ) -> Token:
        """Add a token; an existing hash is left as it is (pinned tokens are re-added on start)."""
        async with self._write() as w:
            await w.execute(
                "INSERT OR IGNORE INTO tokens"
                " (token_hash, label, scopes, organization_slug, kind, last_characters, date_created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token_hash,
                    label,
                    " ".join(sorted(scopes)),
                    organization,
                    kind,
                    last_characters,
                    _ts(utcnow()),
                ),
            )
            row = await _one(
                w,
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?",  # noqa: S608
                (token_hash,),
            )
        assert row is not None
        return _token(row)

    async def get_token(self, token_hash: str) -> Token | None:
        row = await self._fetchone(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?",  # noqa: S608
            (token_hash,),
        )
        return _token(row) if row else None

    async def list_tokens(self) -> list[Token]:
        rows = await self._fetchall(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY id")  # noqa: S608
        return [_token(r) for r in rows]

    async def revoke_token(self, token_id: int) -> bool:
        async with self._write() as w:
            cur = await w.execute(
                "UPDATE tokens SET date_revoked = ? WHERE id = ? AND date_revoked IS NULL",
                (_ts(utcnow()), token_id),
            )
            return cur.rowcount > 0


# ArtifactBundlesEndpoint sortBy values (api/endpoints/artifact_bundles.py).
_BUNDLE_ORDERS = {
    "date_added": "ab.date_created ASC, ab.id ASC",
    "-date_added": "ab.date_created DESC, ab.id DESC",
    "date_modified": "ab.date_modified ASC, ab.id ASC",
    "-date_modified": "ab.date_modified DESC, ab.id DESC",
}

# A bundle member that no newer bundle of the same release and dist overrides (by URL).
_LATEST_ENTRY = """NOT EXISTS (
    SELECT 1 FROM artifact_bundle_files bf2 JOIN artifact_bundles ab2 ON ab2.id = bf2.artifact_bundle_id
    WHERE ab2.organization_id = ab.organization_id AND ab2.release = ab.release AND ab2.dist IS ab.dist
      AND bf2.url = bf.url
      AND (ab2.date_modified > ab.date_modified OR (ab2.date_modified = ab.date_modified AND ab2.id > ab.id)))"""


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _distinct_blobs(files: Sequence[NewBundleFile]) -> list[StoredBlob]:
    return list({f.blob.sha1: f.blob for f in files}.values())


# Shorter search terms cannot use the trigram index and scan the release instead.
_TRIGRAM = 3


def _release_file_filters(
    release_id: int, queries: Sequence[str], checksums: Sequence[str]
) -> tuple[str, str, tuple[Any, ...]]:
    """(FROM, WHERE, params) selecting a release's files by `query` terms and checksums."""
    source = "release_files"
    where = ["release_id = ?"]
    params: list[Any] = [release_id]
    folded = [q.casefold() for q in queries]
    # FTS5 reads its query as a C string, so a term holding NUL cannot go to the index.
    if folded and all(len(q) >= _TRIGRAM and "\x00" not in q for q in folded):
        # Every term is long enough for the trigram index: the matches drive the query
        # (CROSS JOIN keeps SQLite from scanning the release in name order instead).
        source = (
            "(SELECT rowid AS match_id FROM release_files_fts WHERE release_files_fts MATCH ?)"
            " CROSS JOIN release_files ON release_files.id = match_id"
        )
        params.insert(0, " OR ".join('"' + q.replace('"', '""') + '"' for q in folded))
    elif folded:
        where.append("(" + " OR ".join("instr(name_folded, ?) > 0" for _ in folded) + ")")
        params += folded
    if checksums:
        where.append(f"sha1 IN ({', '.join('?' for _ in checksums)})")
        params += list(checksums)
    return source, " AND ".join(where), tuple(params)


_IDENTS_SQL = "SELECT {columns} FROM release_files WHERE release_id = ? AND ident IN ({marks})"


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


async def _existing_releases(w: aiosqlite.Connection, release_ids: Iterable[int]) -> set[int]:
    """Inside a write transaction: which of these releases still exist (callers looked them
    up before taking the lock, and a delete may have run in between)."""
    ids = list(release_ids)
    rows = await _all(w, f"SELECT id FROM releases WHERE id IN ({_marks(ids)})", ids)  # noqa: S608
    return {r[0] for r in rows}


async def _require_release(w: aiosqlite.Connection, release_id: int) -> None:
    if not await _existing_releases(w, [release_id]):
        raise ReleaseGone(release_id)


async def _all(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Execute and fetch in one hop to the connection's thread (a cursor costs three)."""
    return list(await conn.execute_fetchall(sql, params))


async def _one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    rows = await _all(conn, sql, params)
    return rows[0] if rows else None


async def _free_blobs(w: aiosqlite.Connection, candidates: Iterable[str]) -> list[str]:
    """Delete the blob rows among `candidates` nothing references; return their sha1s."""
    freed = []
    for sha1 in candidates:
        if (
            await _one(
                w,
                f"SELECT 1 FROM blobs WHERE sha1 = ? AND {_BLOB_UNREFERENCED}",  # noqa: S608 -- fixed SQL
                (sha1,),
            )
            is not None
        ):
            freed.append(sha1)
    await w.executemany("DELETE FROM blobs WHERE sha1 = ?", [(sha1,) for sha1 in freed])
    return freed


def release_files_page_sql(
    release_id: int, *, offset: int, limit: int, queries: Sequence[str] = (), checksums: Sequence[str] = ()
) -> tuple[str, tuple[Any, ...]]:
    """The list query. The page's ids come from the covering index alone, so a deep OFFSET
    skips index entries rather than joined rows; only the page itself is joined."""
    source, where, params = _release_file_filters(release_id, queries, checksums)
    sql = (
        f"WITH page AS (SELECT id FROM {source} WHERE {where}"  # noqa: S608 -- fixed fragments
        " ORDER BY name, id LIMIT ? OFFSET ?)"
        f"{_FILE_SELECT} JOIN page ON page.id = f.id ORDER BY f.name, f.id"
    )
    return sql, (*params, limit, offset)


def _split_statements(script: str) -> list[str]:
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
