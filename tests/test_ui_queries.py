"""The web UI's own queries read indexes, never a scan of the big tables: a page must stay
fast with 50 000 files in a release (scripts/bench.py measures it)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime

import aiosqlite
import pytest

from relserver.config import Config
from relserver.storage.sql.dialect import Params, Row
from relserver.storage.sql.repos.sessions import UiSessions
from relserver.storage.sql.repos.summaries import Summaries
from relserver.storage.sql.sqlite import SqliteCatalog, SqliteDb

pytestmark = pytest.mark.sqlite_only

# Tables that grow with uploads (or with sign-ins); a plan may scan only the small ones.
BIG_TABLES = ("release_files", "artifact_bundle_files", "artifact_bundles", "ui_sessions", "dists", "release_projects")


class RecordingDb(SqliteDb):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(conn)
        self.seen: list[tuple[str, Params]] = []

    async def rows(self, sql: str, params: Params | None = None) -> list[Row]:
        self.seen.append((sql, params or {}))
        return await super().rows(sql, params)

    async def row(self, sql: str, params: Params | None = None) -> Row | None:
        self.seen.append((sql, params or {}))
        return await super().row(sql, params)

    async def run(self, sql: str, params: Params | None = None) -> int:
        self.seen.append((sql, params or {}))
        return await super().run(sql, params)


def scans(config: Config, sql: str, params: Params) -> list[str]:
    with contextlib.closing(sqlite3.connect(config.db_path)) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    return [step for step in plan if step.startswith("SCAN") and any(t in step for t in BIG_TABLES)]


async def test_the_overview_release_and_debug_id_queries_read_indexes(config: Config, catalog: SqliteCatalog) -> None:
    async with aiosqlite.connect(config.db_path) as conn:
        conn.row_factory = sqlite3.Row
        db = RecordingDb(conn)
        summaries = Summaries(db)
        await summaries.project_counts(1)
        await summaries.release_counts(1, 1, "1.0")
        await summaries.members_with_debug_id(1, 1, "0c5a8e0e-5b83-4bd6-9d4b-0e8c3a1f2d77", limit=50)
        sessions = UiSessions(db)
        await sessions.get("hash")
        await sessions.delete_of_token(1)
    assert len(db.seen) >= 5
    for sql, params in db.seen:
        assert scans(config, sql, params) == [], sql


async def test_expiring_sessions_is_the_one_scan_and_only_of_the_sessions(
    config: Config, catalog: SqliteCatalog
) -> None:
    """Expired sessions go on each sign-in: a scan of ui_sessions, which holds one row per
    browser signed in within the last week, never of anything that grows with uploads."""
    async with aiosqlite.connect(config.db_path) as conn:
        db = RecordingDb(conn)
        when = datetime(2026, 1, 1, tzinfo=UTC)
        await UiSessions(db).delete_expired(created_before=when, seen_before=when)
    ((sql, params),) = db.seen
    found = scans(config, sql, params)
    assert found and all("ui_sessions" in step for step in found), found
