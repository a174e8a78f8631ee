"""Blob references on PostgreSQL + S3 (DESIGN D10), with the real servers: random object keys,
one blob row per sha1 whichever process stores it, deletion deferred to the collector, and S3
failures at run time answered as a Sentry-shaped 503."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from relserver import services
from relserver.config import Config
from relserver.ingest.chunks import ReceivedChunk
from relserver.keys import backend_key
from relserver.models import Organization, ReleaseFile, StoredBlob
from relserver.sentry import release_file_ident
from relserver.services.collector import collect
from relserver.services.context import blob_writes, release_blobs
from relserver.storage.blobs import BlobStore
from relserver.storage.blobs.s3_config import S3Settings
from relserver.storage.catalog import Catalog, DuplicateReleaseFile

from ..conftest import ClientFactory, bearer, create_release, files_url, upload
from ..round_robin import round_robin
from ..s3_server import SeaweedServer, find_weed

LATER = timedelta(hours=2)


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


async def _process(pg_url: str, blob_url: str, settings: S3Settings, root: Path) -> services.Backend:
    """What one relserver process has: its own catalog pool and S3 client, its own data dir."""
    from relserver.storage.blobs.s3 import S3BlobStore
    from relserver.storage.sql.postgres import PostgresCatalog

    config = Config(data_dir=root, database_url=pg_url, blob_url=blob_url, fsync=False)
    blobstore = S3BlobStore(blob_url, config.tmp_dir, settings)
    await asyncio.to_thread(blobstore.prepare)
    catalog = PostgresCatalog(pg_url, pool_size=3)
    await catalog.open()
    return services.Backend(config, catalog, blobstore)


@pytest.fixture
async def processes(
    pg_url: str, s3_blob_url: str, s3_settings: S3Settings, tmp_path: Path
) -> AsyncIterator[list[services.Backend]]:
    backends = [await _process(pg_url, s3_blob_url, s3_settings, tmp_path / f"p{i}") for i in range(2)]
    try:
        yield backends
    finally:
        for backend in backends:
            await backend.catalog.close()


def _chunk(blobstore: BlobStore, data: bytes) -> ReceivedChunk:
    staged = blobstore.stage()
    staged.write(data)
    return ReceivedChunk(staged, staged.finish(), sha1(data))


async def _names(catalog: Catalog) -> frozenset[str]:
    async with catalog.read() as tx:
        return await tx.blobs.names()


async def test_two_processes_storing_the_same_bytes_at_once_keep_one_blob(processes: list[services.Backend]) -> None:
    """Both write an object (random keys: neither can overwrite the other's); the blob row's
    sha1 is unique, so one object wins and the other process deletes its own."""
    first, second = processes
    async with first.catalog.write() as tx:
        org = await tx.organizations.ensure("acme")
    for round_ in range(4):
        data = b"the same bytes, round %d " % round_ * 2000
        await asyncio.gather(
            services.store_chunks(first, org, org.slug, [_chunk(first.blobstore, data)]),
            services.store_chunks(second, org, org.slug, [_chunk(second.blobstore, data)]),
        )
    async with first.catalog.read() as tx:
        rows = await tx.blobs.get([sha1(b"the same bytes, round %d " % r * 2000) for r in range(4)])
        assert len(rows) == 4
        assert await tx.chunks.owned(org.id, list(rows)) == set(rows)
    stored = sorted(await asyncio.to_thread(lambda: list(first.blobstore.iter_names())))
    assert stored == sorted(blob.name for blob in rows.values())
    for sha, blob in rows.items():
        assert blob.key is not None and sha not in blob.key
        assert sha1(b"".join(first.blobstore.open_range(blob.name))) == sha


async def _stored_object(backend: services.Backend, data: bytes) -> str:
    async with backend.catalog.read() as tx:
        return (await tx.blobs.get([sha1(data)]))[sha1(data)].name


async def test_a_delete_leaves_the_bytes_to_the_collector_after_the_grace_period(
    processes: list[services.Backend],
) -> None:
    backend, other = processes
    chunk = _chunk(backend.blobstore, b"freed")
    # A blob whose one reference goes in the transaction that stores it: its row stays.
    async with blob_writes(backend, [(chunk.temp, chunk.blob)]) as writes, backend.catalog.write() as tx:
        await writes.reference(tx)
        await release_blobs(backend, tx, [chunk.blob.sha1])
    name = await _stored_object(backend, b"freed")
    # Not inline: the object stays, and a collector inside the grace period keeps it.
    assert backend.blobstore.exists(name)
    report = await collect(other.catalog, other.blobstore, grace=3600)
    assert report.blobs == 0 and backend.blobstore.exists(name)
    # Past it, any process's collector deletes row and object.
    report = await collect(other.catalog, other.blobstore, grace=3600, now=datetime.now(UTC) + LATER)
    assert report.blobs == 1 and not backend.blobstore.exists(name)
    assert await _names(backend.catalog) == frozenset()


async def _org(backend: services.Backend) -> Organization:
    async with backend.catalog.write() as tx:
        return await tx.organizations.ensure("acme")


async def test_bytes_uploaded_again_within_the_grace_period_are_not_collected(
    make_client: ClientFactory, config: Config, pg_url: str, s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file deleted, then the same bytes uploaded again before the collector ran: the new
    file's row refers to the blob, so no collector pass (even long after) deletes it."""
    shared = _on_pg_and_s3(config, pg_url, s3_server, monkeypatch)
    client = await make_client(shared)
    await create_release(client, "1.0")
    resp = await upload(client, b"reused bytes", name="~/a.js")
    first = await resp.json()
    assert (await client.delete(f"{files_url('1.0')}{first['id']}/", headers=bearer())).status == 204
    resp = await upload(client, b"reused bytes", name="~/b.js")
    second = await resp.json()
    assert resp.status == 201
    backend = client.app[backend_key]
    report = await collect(backend.catalog, backend.blobstore, grace=3600, now=datetime.now(UTC) + LATER)
    assert report.blobs == 0
    download = await client.get(f"{files_url('1.0')}{second['id']}/?download=1", headers=bearer())
    assert (download.status, await download.read()) == (200, b"reused bytes")


async def test_the_collector_deletes_only_old_objects_no_row_names(processes: list[services.Backend]) -> None:
    """A crash between an object's upload and its row's commit leaves an object nobody names:
    the collector deletes it once it is older than the grace period, never a fresh one (an
    upload in flight) nor one a row names."""
    backend, other = processes
    org = await _org(backend)
    await services.store_chunks(backend, org, org.slug, [_chunk(backend.blobstore, b"kept")])
    kept = await _stored_object(backend, b"kept")
    leftover = backend.blobstore.put_small(b"a crash left me")
    assert leftover.key is not None
    report = await collect(other.catalog, other.blobstore, grace=3600, leftovers=True)
    assert report.leftovers == 0 and backend.blobstore.exists(leftover.name)
    report = await collect(other.catalog, other.blobstore, grace=3600, now=datetime.now(UTC) + LATER, leftovers=True)
    assert report.leftovers == 1 and not backend.blobstore.exists(leftover.name)
    assert backend.blobstore.exists(kept)


def _on_pg_and_s3(config: Config, pg_url: str, server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> Config:
    for name, value in server.environ.items():
        monkeypatch.setenv(name, value)
    return config.with_overrides(database_url=pg_url, blob_url=server.new_blob_url())


class TestS3FailingAtRunTime:
    """A bucket that vanishes, revoked credentials or an endpoint that went down after start are
    a Sentry-shaped 503 and one log line, never a 500 with a traceback."""

    @pytest.fixture
    def own_server(self, s3_server: SeaweedServer) -> Iterator[SeaweedServer]:
        """A SeaweedFS of this test's own, to stop mid-run (the session's one, first, skips or
        fails under CI when SeaweedFS is missing)."""
        weed = find_weed()
        assert weed is not None
        server = SeaweedServer(weed)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    async def test_a_stopped_s3_server_is_a_503_with_a_detail_and_one_log_line(
        self,
        make_client: ClientFactory,
        config: Config,
        own_server: SeaweedServer,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        for name, value in own_server.environ.items():
            monkeypatch.setenv(name, value)
        client = await make_client(config.with_overrides(blob_url=own_server.new_blob_url()))
        await create_release(client, "1.0")
        resp = await upload(client, b"stored while it ran", name="~/a.js")
        stored = await resp.json()
        assert resp.status == 201
        own_server.stop()
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="relserver"):
            download = await client.get(f"{files_url('1.0')}{stored['id']}/?download=1", headers=bearer())
            body = await download.json()
            assert download.status == 503 and set(body) == {"detail"} and "blob store" in body["detail"]
            resp = await upload(client, b"small", name="~/c.js")
            assert (resp.status, set(await resp.json())) == (503, {"detail"})
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors and all(r.exc_info is None and "\n" not in r.getMessage() for r in errors)
        assert "cannot reach the endpoint" in errors[0].getMessage()


class TestSentryRacesAcrossProcesses:
    """Chunk POSTs, uploads and release creation take no lock across processes on PostgreSQL +
    S3: constraints decide, and Sentry's answers still hold."""

    async def test_one_name_uploaded_on_two_processes_at_once_is_one_201_and_409s(
        self, processes: list[services.Backend]
    ) -> None:
        first, second = processes
        async with first.catalog.write() as tx:
            org = await tx.organizations.ensure("acme")
            release, _ = await tx.releases.get_or_create(
                org.id, "1.0", ref=None, url=None, user_agent=None, date_released=None
            )

        async def put(backend: services.Backend, i: int) -> object:
            data = b"version %d of the file" % i

            async def commit_blob() -> StoredBlob:
                return await asyncio.to_thread(backend.blobstore.put_small, data)

            try:
                return await backend.uploads.add(
                    organization_id=org.id,
                    release_id=release.id,
                    name="~/app.js",
                    ident=release_file_ident("~/app.js", None),
                    dist=None,
                    headers={},
                    commit_blob=commit_blob,
                )
            except DuplicateReleaseFile as exc:
                return exc

        outcomes = await asyncio.gather(*(put(processes[i % 2], i) for i in range(8)))
        created = [o for o in outcomes if isinstance(o, ReleaseFile)]
        assert len(created) == 1 and all(isinstance(o, DuplicateReleaseFile) for o in outcomes if o not in created)
        async with second.catalog.read() as rtx:
            (listed,) = await rtx.files.page(release.id, offset=0, limit=10)
        assert listed.id == created[0].id
        # Only the winner's object is left: the refused uploads' objects went after their commit.
        stored = await asyncio.to_thread(lambda: list(first.blobstore.iter_names()))
        assert stored == [listed.blob_name]

    async def test_one_release_created_on_two_processes_at_once_is_one_201_and_208s(
        self, processes: list[services.Backend]
    ) -> None:
        org = await _org(processes[0])
        results = await asyncio.gather(
            *(services.create_release(processes[i % 2], org, "2.0", [], services.ReleaseFields()) for i in range(6))
        )
        assert sorted(created for _, created in results) == [False] * 5 + [True]


def _strict_s3(request: web.Request) -> web.Response | None:
    """What AWS S3 answers a presigned request that also carries an Authorization header (the
    test servers accept it, so the proxy in front of SeaweedFS refuses it as AWS would)."""
    if "X-Amz-Signature" in request.query and "Authorization" in request.headers:
        return web.Response(status=400, text="<Error><Code>InvalidArgument</Code>Only one auth mechanism allowed")
    return None


async def test_a_redirected_download_reaches_s3_without_the_clients_authorization(
    make_client: ClientFactory, config: Config, s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--blob-redirect answers a download with a 302 to a presigned URL on the bucket's origin;
    a client following it sends no Authorization there (S3 would refuse the request), and gets
    the bytes."""
    seen: list[tuple[bool, bool, int]] = []

    async def note(request: web.Request, backend: str, status: int, payload: bytes) -> None:
        seen.append(("X-Amz-Signature" in request.query, "Authorization" in request.headers, status))

    async with round_robin([s3_server.endpoint], after=note, refuse=_strict_s3) as (strict_endpoint, _):
        for name, value in s3_server.environ.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", strict_endpoint)
        client = await make_client(config.with_overrides(blob_url=s3_server.new_blob_url(), blob_redirect=True))
        await create_release(client, "1.0")
        resp = await upload(client, b"served by S3 itself", name="~/a.js")
        stored = await resp.json()
        url = f"{files_url('1.0')}{stored['id']}/?download=1"
        redirect = await client.get(url, headers=bearer(), allow_redirects=False)
        location = redirect.headers["Location"]
        assert redirect.status == 302 and location.startswith(strict_endpoint) and "X-Amz-Signature" in location
        # A conditional request is still answered here, by the sha1.
        etag = f'"{stored["sha1"]}"'
        assert (await client.get(url, headers={**bearer(), "If-None-Match": etag})).status == 304
        seen.clear()
        followed = await client.get(url, headers=bearer())
        assert (followed.status, await followed.read()) == (200, b"served by S3 itself")
        assert seen == [(True, False, 200)]
        # The strict front does refuse a client that forwards its token to the presigned URL.
        async with aiohttp.ClientSession() as session, session.get(location, headers=bearer()) as forwarded:
            assert forwarded.status == 400


async def test_vacuum_and_check_on_postgres_and_s3_speak_of_the_collector(
    make_client: ClientFactory, config: Config, pg_url: str, s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = _on_pg_and_s3(config, pg_url, s3_server, monkeypatch)
    client = await make_client(shared)
    await create_release(client, "1.0")
    resp = await upload(client, b"deleted before the vacuum", name="~/a.js")
    assert (await client.delete(f"{files_url('1.0')}{(await resp.json())['id']}/", headers=bearer())).status == 204
    await client.close()
    urls = ["--data-dir", str(shared.data_dir), "--database-url", pg_url, "--blob-url", str(shared.blob_url)]

    def run(command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "relserver", command, *urls, *extra], capture_output=True, text=True, timeout=60
        )

    vacuum = await asyncio.to_thread(run, "vacuum")
    assert (vacuum.returncode, vacuum.stderr) == (0, ""), vacuum.stdout
    # The deleted file's blob is within its grace period: stamped, kept.
    assert "for the collector, which deleted 0 blob(s) unreferenced for over 3600 s" in vacuum.stdout
    # The servers' own grace period, when they run with another one.
    vacuum = await asyncio.to_thread(run, "vacuum", "--blob-grace-seconds", "600")
    assert (vacuum.returncode, vacuum.stderr) == (0, ""), vacuum.stdout
    assert "which deleted 0 blob(s) unreferenced for over 600 s" in vacuum.stdout
    check = await asyncio.to_thread(run, "check")
    assert check.returncode == 0, check.stdout
    assert "1 blobs (0 unreferenced in the blob store, deleted by the collector once older than 3600 s)" in check.stdout
