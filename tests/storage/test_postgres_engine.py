"""What only the PostgreSQL engine has: `:name` rendering, its configuration, one-line start-up
failures, and migrations run once by processes starting together."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relserver.config import Config
from relserver.storage import catalog_for, describe_catalog, redact
from relserver.storage.blobs.disk import DiskBlobStore
from relserver.storage.catalog import CatalogUnavailable
from relserver.storage.sql.postgres import PostgresCatalog, render
from relserver.storage.sql.postgres_schema import MIGRATIONS

from ..conftest import ClientFactory, assert_api_error, bearer, create_release, upload
from ..postgres_cluster import Cluster


class TestRender:
    def test_named_parameters_become_numbered_in_order_of_first_use(self) -> None:
        assert render("SELECT :b, :a, :b") == ("SELECT $1, $2, $1", ("b", "a"))

    def test_quoted_text_and_casts_are_left_alone(self) -> None:
        sql = "SELECT ':not' , x::text, CASE WHEN r = '{}' THEN :yes END, 'it''s :no'"
        assert render(sql) == ("SELECT ':not' , x::text, CASE WHEN r = '{}' THEN $1 END, 'it''s :no'", ("yes",))


class TestConfiguration:
    def test_a_url_selects_postgresql_and_none_keeps_sqlite(self, config: Config) -> None:
        assert isinstance(catalog_for(config.with_overrides(database_url="postgresql://u@h/d")), PostgresCatalog)
        assert describe_catalog(config.with_overrides(database_url=None)).startswith("SQLite, ")

    def test_the_password_never_shows(self) -> None:
        url = "postgresql://relserver:s3cret@db.example:5432/rel?sslmode=require&password=s3cret"
        assert redact(url) == "postgresql://relserver@db.example:5432/rel"
        assert "s3cret" not in describe_catalog(Config(database_url=url))

    def test_a_url_that_is_not_postgresql_is_refused_by_the_cli(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "relserver", "--database-url", "mysql://x/y", "--port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "not a PostgreSQL URL" in result.stderr


class TestStartFailures:
    async def test_nothing_listening_is_one_line_naming_the_database_without_its_password(
        self, pg_cluster: Cluster
    ) -> None:
        url = f"postgresql://postgres:hunter2@127.0.0.1:{pg_cluster.port + 1}/nowhere"
        with pytest.raises(CatalogUnavailable) as raised:
            await PostgresCatalog(url).open()
        message = str(raised.value)
        assert message.startswith("cannot use the PostgreSQL database postgresql://postgres@127.0.0.1:")
        assert "hunter2" not in message and "\n" not in message

    async def test_a_missing_database_is_one_line(self, pg_cluster: Cluster) -> None:
        with pytest.raises(CatalogUnavailable, match="does not exist"):
            await PostgresCatalog(pg_cluster.url("no_such_database")).open()

    def test_serve_says_it_in_one_line_and_exits_1(self, pg_cluster: Cluster, tmp_path: Path) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "relserver",
                "--port",
                "0",
                "--data-dir",
                str(tmp_path),
                "--database-url",
                pg_cluster.url("no_such_database"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("relserver: cannot use the PostgreSQL database"), line


async def test_processes_starting_together_migrate_once(pg_url: str) -> None:
    """Six catalogs open the same fresh database at once: one migrates, all agree."""
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    catalogs = [PostgresCatalog(pg_url, pool_size=2) for _ in range(6)]
    await asyncio.gather(*(c.open() for c in catalogs))
    try:
        checks = await asyncio.gather(*(c.check() for c in catalogs))
        assert {c.schema_version for c in checks} == {len(MIGRATIONS)}
        async with catalogs[0].write() as tx:
            await tx.organizations.ensure("acme")
        async with catalogs[5].read() as rtx:
            assert await rtx.organizations.get("acme") is not None
    finally:
        await asyncio.gather(*(c.close() for c in catalogs))


async def test_writers_of_two_processes_take_turns(pg_url: str) -> None:
    """Two catalogs (as two processes would) read-modify-write one counter: no update is lost."""
    first, second = PostgresCatalog(pg_url, pool_size=3), PostgresCatalog(pg_url, pool_size=3)
    await first.open()
    await second.open()
    try:
        async with first.write() as tx:
            org = await tx.organizations.ensure("acme")
            release, _ = await tx.releases.get_or_create(
                org.id, "1.0", ref=None, url=None, user_agent=None, date_released=None
            )

        async def bump(catalog: PostgresCatalog) -> None:
            async with catalog.write() as wtx:
                current = await wtx.deploys.count(release.id)
                await asyncio.sleep(0)  # let the other process's writer try to interleave
                await wtx.deploys.add(
                    release.id,
                    environment=f"env{current}",
                    name=None,
                    url=None,
                    date_started=None,
                    date_finished=datetime.now(UTC),
                )

        await asyncio.gather(*(bump(first if i % 2 else second) for i in range(20)))
        async with first.read() as rtx:
            deploys = await rtx.deploys.page(release.id, limit=100)
        assert sorted(d.environment for d in deploys) == sorted(f"env{i}" for i in range(20))
    finally:
        await first.close()
        await second.close()


async def test_a_connection_given_back_holding_an_advisory_lock_is_reset_and_others_are_not(pg_url: str) -> None:
    """The pool skips asyncpg's reset query (a round trip per release) except on a connection
    whose unlock did not run: that one must not go back to the pool still holding the lock."""
    catalog = PostgresCatalog(pg_url, pool_size=1)
    await catalog.open()
    try:
        async with catalog.pool.acquire() as conn:
            held = catalog._advisory_lock(conn, 0x5EED)
            await held.__aenter__()  # taken, and left as a cancelled unlock would leave it
            pid = conn.get_server_pid()
        async with catalog.pool.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same connection, not a new one
            assert not await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            await conn.execute("SET application_name = 'kept'")
        async with catalog.pool.acquire() as conn:
            # An ordinary release runs no reset query (relserver sets nothing it must undo).
            assert await conn.fetchval("SHOW application_name") == "kept"
        async with catalog.write() as tx:
            await tx.organizations.ensure("acme")
    finally:
        await catalog.close()


async def delete_release_rounds(
    deleter: PostgresCatalog,
    organization_id: int,
    stop: asyncio.Event,
    *,
    then: Callable[[], Awaitable[None]] | None = None,
    rounds: int = 300,
) -> int:
    """Delete release "1.0" if it is there, then run `then`, `rounds` times in one process's
    transactions; set `stop` and say how many deletes found the release."""
    deleted = 0
    for _ in range(rounds):
        async with deleter.write() as wtx:
            release = await wtx.releases.get(organization_id, "1.0")
            if release is not None:
                await wtx.releases.delete(release.id)
                deleted += 1
        if then is not None:
            await then()
    stop.set()
    return deleted


async def test_a_release_create_racing_its_delete_on_another_process_creates_or_finds_it(pg_url: str) -> None:
    """A create that meets a row another process is deleting, or deletes before the create has
    read it back and linked it, either keeps the row or makes it anew after the delete: never
    an assertion, a ReleaseGone or a foreign-key error (a 500). Four creators make a create
    lose that race several times in a row when it reads the row back unlocked and retries."""
    creator, deleter = PostgresCatalog(pg_url, pool_size=4), PostgresCatalog(pg_url, pool_size=2)
    await creator.open()
    await deleter.open()
    try:
        async with creator.write() as tx:
            org = await tx.organizations.ensure("acme")
            (project,) = await tx.projects.ensure(org.id, ["web"])
        stop = asyncio.Event()

        async def create() -> int:
            made = 0
            while not stop.is_set():
                async with creator.write(serialized=False) as wtx:
                    release, created = await wtx.releases.get_or_create(
                        org.id, "1.0", ref=None, url=None, user_agent=None, date_released=None
                    )
                    await wtx.releases.link(release.id, [project.id])
                made += created
            return made

        creates = asyncio.gather(*(create() for _ in range(4)))
        deleted = await delete_release_rounds(deleter, org.id, stop)
        made = sum(await creates)
        assert deleted > 10 and made >= deleted  # the race ran, both sides often
    finally:
        await creator.close()
        await deleter.close()


async def test_a_release_an_upload_found_live_keeps_its_rows_until_the_upload_commits(pg_url: str) -> None:
    """An upload batch looks its release up, then in its transaction checks the release is
    still there and adds its dist. A delete on another process after that check would make
    the dist's INSERT a foreign-key error (a retry), or, cascading to an existing dist between
    its INSERT … ON CONFLICT DO NOTHING and its read back, fail an assertion (a 500): the check
    keeps the release, so the delete waits for the commit."""
    uploader, deleter = PostgresCatalog(pg_url, pool_size=4), PostgresCatalog(pg_url, pool_size=2)
    await uploader.open()
    await deleter.open()
    stamp = "2026-01-01T00:00:00Z"
    try:
        async with deleter.write() as tx:
            org = await tx.organizations.ensure("acme")
        stop = asyncio.Event()

        async def make() -> None:
            async with deleter.write() as wtx:
                release, _ = await wtx.releases.get_or_create(
                    org.id, "1.0", ref=None, url=None, user_agent=None, date_released=None
                )
                await wtx.files.ensure_dist(release.id, "d1", stamp)

        async def upload() -> int:
            added = 0
            while not stop.is_set():
                async with uploader.read() as rtx:
                    release = await rtx.releases.get(org.id, "1.0")
                if release is None:
                    await asyncio.sleep(0)
                    continue
                async with uploader.write(serialized=False) as wtx:
                    if await wtx.releases.existing([release.id]):
                        await wtx.files.ensure_dist(release.id, "d1", stamp)
                        added += 1
            return added

        await make()
        uploads = asyncio.gather(*(upload() for _ in range(4)))
        deleted = await delete_release_rounds(deleter, org.id, stop, then=make)
        added = sum(await uploads)
        assert deleted == 300 and added > 10  # the race ran, both sides often
    finally:
        await uploader.close()
        await deleter.close()


class TestNulOnPostgres:
    """PostgreSQL's text cannot hold NUL, which SQLite's can: a NUL that would be stored is a
    400 in DRF's words, and a search for one finds nothing, never a 500."""

    async def test_a_file_name_holding_nul_is_a_400_and_stores_nothing(
        self, make_client: ClientFactory, config: Config, pg_url: str
    ) -> None:
        client = await make_client(config.with_overrides(database_url=pg_url))
        await create_release(client, "1.0")
        resp = await upload(client, b"x", name="~/abc\x00def.js")
        await assert_api_error(resp, 400, {"detail": "Null characters are not allowed."})
        assert (await upload(client, b"x", name="~/abc.js")).status == 201

    @pytest.mark.parametrize("query", ["\x00", "abc\x00def"])
    async def test_a_search_term_holding_nul_finds_nothing(
        self, make_client: ClientFactory, config: Config, pg_url: str, query: str
    ) -> None:
        client = await make_client(config.with_overrides(database_url=pg_url))
        await create_release(client, "1.0")
        assert (await upload(client, b"x", name="~/abc.js")).status == 201
        files_url = "/api/0/projects/acme/web/releases/1.0/files/"
        resp = await client.get(files_url, params={"query": query}, headers=bearer())
        assert (resp.status, await resp.json()) == (200, [])
        resp = await client.get(files_url, params=[("query", query), ("query", "abc")], headers=bearer())
        assert [f["name"] for f in await resp.json()] == ["~/abc.js"]
        resp = await client.get("/api/0/projects/acme/web/releases/1.0\x00/files/", headers=bearer())
        assert resp.status == 404


async def test_a_start_on_a_shared_catalog_deletes_no_blob_bytes(
    make_client: ClientFactory, config: Config, pg_url: str
) -> None:
    """Another process may have stored a blob and not yet committed its row: a start-up
    sweep on a shared catalog removes this data dir's temp files, never blob bytes."""
    shared = config.with_overrides(database_url=pg_url)
    first = await make_client(shared)
    await first.close()
    blobs = DiskBlobStore(shared.blob_dir, shared.tmp_dir, fsync=False)
    in_flight = blobs.put_small(b"stored by another process, its row not yet committed")
    stale = blobs.stage()
    stale.write(b"a crash's leftover")
    stale.finish()
    await make_client(shared)
    assert blobs.exists(in_flight.sha1)
    assert not stale.path.exists()


async def test_check_on_a_shared_catalog_says_unreferenced_bytes_are_kept(
    make_client: ClientFactory, config: Config, pg_url: str
) -> None:
    shared = config.with_overrides(database_url=pg_url)
    client = await make_client(shared)
    await create_release(client, "1.0")
    assert (await upload(client, b"x", name="~/a.js")).status == 201
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "relserver", "check", "--data-dir", str(shared.data_dir), "--database-url", pg_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    first, last = result.stdout.splitlines()
    assert first.endswith(
        "1 blobs (0 unreferenced in the blob store, kept: a sweep on a shared catalog deletes no bytes)"
    ), first
    assert last == "ok"
