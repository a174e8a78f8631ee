"""The store and blob store across restarts: migrations, the start-up sweep, the invariants."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from relserver import services
from relserver.app import startup_key
from relserver.config import Config, KiB
from relserver.errors import NotFound
from relserver.keys import blobstore_key, catalog_key
from relserver.models import NewBundleFile, Release, StoredBlob
from relserver.sentry import DeployFields, release_file_ident
from relserver.storage.blobs import BlobStore
from relserver.storage.blobs.disk import DiskBlobStore, TempBlob
from relserver.storage.catalog import ReleaseGone
from relserver.storage.sql.dialect import Params, Row, utcnow
from relserver.storage.sql.repos.files import ReleaseFiles
from relserver.storage.sql.sqlite import SqliteCatalog, SqliteDb
from relserver.storage.sql.sqlite_schema import MIGRATIONS

from .conftest import ADMIN_TOKEN, ClientFactory, blob_path, create_release, sha1, stored_sha1s, temp_files, upload


async def test_restart_over_the_same_data_dir_keeps_every_file(make_client: ClientFactory, config: Config) -> None:
    durable = config.with_overrides(fsync=True)
    first = await make_client(durable)
    await create_release(first)
    uploaded = {}
    for i in range(5):
        data = f"file {i}".encode() * 100
        resp = await upload(first, data, name=f"~/f{i}.js", dist="d1" if i % 2 else None)
        uploaded[f"~/f{i}.js"] = (data, await resp.json())
    await first.close()

    second = await make_client(durable)
    blobstore = second.app[blobstore_key]
    async with second.app[catalog_key].read() as tx:
        org = await tx.organizations.get("acme")
        assert org is not None
        release = await tx.releases.get(org.id, "1.0")
        assert release is not None
        records = {name: await tx.files.get(release.id, int(body["id"])) for name, (_, body) in uploaded.items()}
    for name, (data, body) in uploaded.items():
        record = records[name]
        assert record is not None
        assert (record.name, record.dist, record.headers, record.sha1, record.size) == (
            name,
            body["dist"],
            body["headers"],
            sha1(data),
            len(data),
        )
        assert b"".join(blobstore.open_range(record.blob_name)) == data
    # And the identity constraint survived too.
    assert (await upload(second, b"again", name="~/f0.js")).status == 409


async def test_migrations_are_idempotent_and_end_at_the_latest_version(config: Config) -> None:
    config.data_dir.mkdir(parents=True)
    for _ in range(3):
        async with SqliteCatalog(config.db_path) as catalog:
            assert (await catalog.check()).schema_version == len(MIGRATIONS)
            assert (await catalog.check()).integrity == "ok"


async def test_a_database_from_a_newer_relserver_is_refused(config: Config) -> None:
    config.data_dir.mkdir(parents=True)
    async with SqliteCatalog(config.db_path):
        pass
    with contextlib.closing(sqlite3.connect(config.db_path)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this relserver"):
        async with SqliteCatalog(config.db_path):
            pass


@pytest.mark.disk_only
async def test_startup_sweep_removes_temp_files_and_unreferenced_blobs(
    make_client: ClientFactory, config: Config
) -> None:
    client = await make_client(config)
    await create_release(client)
    kept = await (await upload(client, b"kept")).json()
    await client.close()

    blobstore = DiskBlobStore(config.blob_dir, config.tmp_dir, fsync=False)
    stale_temp = blobstore.stage()  # a crash left it: relserver's own name
    stale_temp.write(b"half an upload")
    stale_temp.finish()
    orphan = blob_path(config.blob_dir, sha1(b"orphan"))
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")

    client = await make_client(config)
    report = client.app[startup_key].sweep
    assert (report.temp_files, report.orphan_blobs) == (1, 1)
    assert temp_files(config) == []
    assert stored_sha1s(config) == [kept["sha1"]]


@pytest.mark.disk_only
async def test_the_sweep_removes_only_names_relserver_gives_its_own_files(
    make_client: ClientFactory, config: Config
) -> None:
    """DESIGN invariant 10: whatever else sits in tmp/ or blobs/ is not relserver's to delete."""
    blobstore = DiskBlobStore(config.blob_dir, config.tmp_dir, fsync=False)
    blobstore.prepare()
    ours = blobstore.stage()
    ours.finish()
    digest = sha1(b"misplaced")
    strangers = [
        config.tmp_dir / "notes.txt",
        config.tmp_dir / "upload-abc123.part",  # another tool's naming, close to ours
        config.tmp_dir / "relserver-abc.partial",
        config.tmp_dir / "relserver-.part",
        config.blob_dir / "README",
        config.blob_dir / "ff" / "ee" / digest,  # a sha1 name, but not at its own ab/cd/ place
        config.blob_dir / digest[:2] / digest[2:4] / (digest + ".bak"),
    ]
    for path in strangers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not relserver's")
    (config.tmp_dir / "relserver-dir.part").mkdir()  # a directory with our name is not our file

    client = await make_client(config)
    report = client.app[startup_key].sweep
    assert (report.temp_files, report.orphan_blobs) == (1, 0)
    assert not ours.path.exists()
    assert [p for p in strangers if not p.exists()] == []
    assert (config.tmp_dir / "relserver-dir.part").is_dir()


async def test_a_row_never_points_at_a_missing_blob(make_client: ClientFactory, config: Config) -> None:
    """Invariant 1 on the way without faults: shared blobs, and a 409 that touches no blob.

    The crash cases are covered elsewhere: the ordering by
    `test_blob_is_in_place_before_its_row_commits`, a failed blob commit by
    `test_a_failed_blob_commit_leaves_no_row_and_no_temp_file`, the sweep of a blob left
    without its row by `test_startup_sweep_removes_temp_files_and_unreferenced_blobs`, and real
    kill -9 runs by `test_process.py::test_a_201_is_durable_across_kill_9` and
    `scripts/torture.py crash`.
    """
    client = await make_client(config)
    await create_release(client)
    for i in range(10):
        await upload(client, f"{i % 3}".encode(), name=f"~/{i}.js")
    await upload(client, b"conflict", name="~/0.js")
    catalog = client.app[catalog_key]
    on_disk = set(stored_sha1s(config))
    assert (await catalog.check()).blob_rows == on_disk == {sha1(b"0"), sha1(b"1"), sha1(b"2")}
    assert (await catalog.check()).dangling == ()


def visible_release_files(config: Config, blob_sha1: str) -> int:
    """Rows a reader outside the server sees now: only what has been committed."""
    with contextlib.closing(sqlite3.connect(f"{config.db_path.as_uri()}?mode=ro", uri=True)) as conn:
        (count,) = conn.execute("SELECT count(*) FROM release_files WHERE blob_sha1 = ?", (blob_sha1,)).fetchone()
    return int(count)


@pytest.mark.disk_only
@pytest.mark.parametrize("size", [1 * KiB, 20 * KiB], ids=["in-memory", "streamed"])
async def test_blob_is_in_place_before_its_row_commits(
    make_client: ClientFactory, config: Config, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The blob is renamed into place before its row is inserted (in the same transaction), so
    the row cannot be visible before the blob is on disk: a crash in between leaves a blob
    without a row, which the start-up sweep removes, never a row without its blob."""
    client = await make_client(config)
    await create_release(client)
    data = bytes(range(256)) * (size // 256)
    stored_at = blob_path(config.blob_dir, sha1(data))

    # At the rename: is a row for this blob already committed (what a reader sees)?
    real_commit = DiskBlobStore.promote
    committed_rows_at_rename: list[int] = []

    def commit(self: DiskBlobStore, temp: TempBlob, blob: StoredBlob) -> StoredBlob:
        committed_rows_at_rename.append(visible_release_files(config, blob.sha1))
        return real_commit(self, temp, blob)

    # At the INSERT of the row, even inside the transaction: is the blob on disk already?
    real_execute, real_executemany = aiosqlite.Connection.execute, aiosqlite.Connection.executemany
    blob_on_disk_at_insert: list[bool] = []

    def note(sql: str) -> None:
        if sql.lstrip().upper().startswith("INSERT INTO RELEASE_FILES"):
            blob_on_disk_at_insert.append(stored_at.is_file())

    def execute(self: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        note(sql)
        return real_execute(self, sql, *args)

    def executemany(self: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        note(sql)
        return real_executemany(self, sql, *args)

    monkeypatch.setattr(DiskBlobStore, "promote", commit)
    monkeypatch.setattr(aiosqlite.Connection, "execute", execute)
    monkeypatch.setattr(aiosqlite.Connection, "executemany", executemany)
    resp = await upload(client, data)
    assert resp.status == 201, await resp.text()
    assert committed_rows_at_rename == [0]
    assert blob_on_disk_at_insert == [True]
    assert visible_release_files(config, sha1(data)) == 1
    assert stored_at.read_bytes() == data


@pytest.mark.parametrize("size", [12, 20 * KiB], ids=["in-memory", "streamed"])
async def test_a_failed_blob_commit_leaves_no_row_and_no_temp_file(
    make_client: ClientFactory, config: Config, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The move into the content address fails: a 500, and the transaction leaves nothing."""
    client = await make_client(config)
    await create_release(client)

    def crash(self: BlobStore, *args: object) -> None:
        raise OSError("disk went away")

    engine = type(client.app[blobstore_key])
    monkeypatch.setattr(engine, "promote", crash)
    if not issubclass(engine, DiskBlobStore):
        # Only the disk engine's put_small promotes a temp file; elsewhere its PUT is the commit.
        monkeypatch.setattr(engine, "put_small", crash)
    resp = await upload(client, (b"never stored" * size)[:size])
    assert resp.status == 500
    body = await resp.json()
    assert body["detail"] == "Internal Error" and body["errorId"]
    assert (await client.app[catalog_key].check()).release_files == 0
    assert temp_files(config) == []


async def test_a_failed_blob_write_fails_only_its_own_upload_in_a_group_commit(
    make_client: ClientFactory, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(config)
    await create_release(client)
    engine = type(client.app[blobstore_key])
    real_store_bytes = engine.put_small
    first_call = True

    def store_bytes(self: BlobStore, data: bytes) -> StoredBlob:
        nonlocal first_call
        if first_call:
            # Hold the first batch open so every other upload queues for the next one.
            first_call = False
            time.sleep(0.3)
        if data == b"bad":
            raise OSError(5, "Input/output error")
        return real_store_bytes(self, data)

    monkeypatch.setattr(engine, "put_small", store_bytes)
    first = asyncio.ensure_future(upload(client, b"first", name="~/first.js"))
    await asyncio.sleep(0.1)
    rest = [upload(client, f"{i}".encode(), name=f"~/{i}.js") for i in range(10)]
    bad = upload(client, b"bad", name="~/bad.js")
    responses = await asyncio.gather(first, *rest, bad)
    assert [r.status for r in responses] == [201] * 11 + [500]
    catalog = client.app[catalog_key]
    assert (await catalog.check()).release_files == 11
    assert sha1(b"bad") not in set(stored_sha1s(config))
    assert temp_files(config) == []


class TestWritesUnderADeletedRelease:
    """Callers look a release up before they take the write lock, so a delete can come in
    between: every write under a release id checks, inside its transaction, that it is still
    there (Sentry's answer is then the 404 of a missing release)."""

    @pytest.fixture
    async def gone(self, backend: services.Backend) -> Release:
        async with backend.catalog.write() as tx:
            org = await tx.organizations.ensure("acme")
        view, _ = await services.create_release(backend, org, "gone", [], services.ReleaseFields())
        await services.delete_release(backend, view.release)
        return view.release

    async def test_an_update_is_404(self, backend: services.Backend, gone: Release) -> None:
        with pytest.raises(NotFound):
            await services.update_release(backend, gone, services.ReleaseFields(ref="abc"), None, [])

    async def test_a_deploy_is_404_and_stores_nothing(self, backend: services.Backend, gone: Release) -> None:
        with pytest.raises(NotFound):
            await services.add_deploy(
                backend,
                gone,
                DeployFields(environment="prod", name=None, url=None, date_started=None, date_finished=utcnow()),
            )
        async with backend.catalog.read() as tx:
            assert await tx.deploys.page(gone.id) == []

    async def test_a_release_bundle_raises_release_gone_before_storing_blobs(
        self, backend: services.Backend, gone: Release, config: Config
    ) -> None:
        staged = backend.blobstore.stage()
        staged.write(b"zip")
        blob = staged.finish()
        member = NewBundleFile(
            path="a.js", url="~/a.js", file_type=None, headers={}, debug_id=None, blob=StoredBlob(sha1(b"a"), 1)
        )
        with pytest.raises(ReleaseGone):
            await services.upsert_release_bundle(
                backend, release=gone, dist=None, bundle_blob=blob, files=[("~/a.js", member)], staged=[(staged, blob)]
            )
        assert not staged.consumed and not backend.blobstore.exists(blob.sha1)
        staged.discard()


class TestBootstrapToken:
    async def test_first_start_mints_one_admin_token_in_a_0600_file(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        unpinned = config.with_overrides(token=None)
        client = await make_client(unpinned)
        token = client.app[startup_key].new_admin_token
        assert token is not None and token.startswith("sntryu_")
        path: Path = unpinned.admin_token_path
        assert path.read_text().strip() == token
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        await create_release(client, token=token)
        resp = await upload(client, token=token)
        assert resp.status == 201
        await client.close()

        again = await make_client(unpinned)
        assert again.app[startup_key].new_admin_token is None
        assert path.read_text().strip() == token

    async def test_a_pinned_token_means_no_minted_token(self, make_client: ClientFactory, config: Config) -> None:
        client = await make_client(config)
        assert client.app[startup_key].new_admin_token is None
        assert not config.admin_token_path.exists()
        await create_release(client)
        assert (await upload(client, token=ADMIN_TOKEN)).status == 201


async def test_one_writer_serializes_concurrent_writes(make_client: ClientFactory, config: Config) -> None:
    """Uploads, release creates and provisioning at once: no `database is locked`, no lost row."""
    client = await make_client(config)
    await create_release(client)
    uploads = [upload(client, f"{i}".encode(), name=f"~/{i}.js") for i in range(40)]
    releases = [create_release(client, f"r{i}", projects=[f"p{i % 5}"]) for i in range(20)]
    responses, created = await asyncio.gather(asyncio.gather(*uploads), asyncio.gather(*releases))
    assert [r.status for r in responses] == [201] * 40
    assert len({r["version"] for r in created}) == 20
    assert (await client.app[catalog_key].check()).release_files == 40


def test_ident_matches_sentrys_examples() -> None:
    # Values from Sentry's ReleaseFile.get_ident (models/releasefile.py).
    assert release_file_ident("~/app.js", None) == "a2701d97673c73be8e599198cabbe86fafa593fc"
    assert release_file_ident("~/app.js", "web") == "188f9b2fce5908768ee54179815cd7ea43bb32d0"


class RecordingDb(SqliteDb):
    """The SQLite engine's statements, each one also kept for the test to look at."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(conn)
        self.seen: list[tuple[str, Params]] = []

    async def rows(self, sql: str, params: Params | None = None) -> list[Row]:
        self.seen.append((sql, params or {}))
        return await super().rows(sql, params)


async def test_a_deep_page_is_read_from_the_index_without_a_full_scan(config: Config, catalog: SqliteCatalog) -> None:
    """Listing at offset 19 900 walks the covering index, never the table (spec: 20 000 cap)."""
    async with aiosqlite.connect(config.db_path) as conn:
        db = RecordingDb(conn)
        await ReleaseFiles(db).page(1, offset=19_900, limit=101)
    ((sql, params),) = db.seen
    with contextlib.closing(sqlite3.connect(config.db_path)) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert any("COVERING INDEX release_files_by_name" in step for step in plan), plan
    assert not any(step.startswith("SCAN f") or step == "SCAN release_files" for step in plan), plan
