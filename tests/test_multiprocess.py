"""Several relserver processes on one PostgreSQL catalog and one S3 blob store, behind a
round-robin proxy (DESIGN D10): a real sentry-cli 3.x build spreads its requests over them,
and every process then lists and serves the same files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from .round_robin import round_robin
from .s3_server import SeaweedServer
from .server_process import ServerProcess
from .test_sentry_cli import TOKEN, make_build, ok, run_cli

pytestmark = pytest.mark.cli

PROCESSES = 3


@pytest.fixture
def processes(
    tmp_path: Path, pg_url: str, s3_blob_url: str, s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[ServerProcess]]:
    """Three servers, each with a data dir of its own (its lock and temp files), sharing the
    catalog and the blobs; chunks of 4 KiB so even a small build spreads over several POSTs."""
    for name, value in s3_server.environ.items():
        monkeypatch.setenv(name, value)
    shared = ["--database-url", pg_url, "--blob-url", s3_blob_url, "--no-fsync", "--chunk-size", "4KiB"]
    servers = [ServerProcess(tmp_path / f"p{i}", token=TOKEN, extra_args=shared) for i in range(PROCESSES)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()


async def _files(url: str) -> list[dict[str, object]]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session,
        session.get(f"{url}/api/0/projects/acme/web/releases/1.0/files/") as resp,
    ):
        assert resp.status == 200, await resp.text()
        body: list[dict[str, object]] = await resp.json()
        return body


async def _download(url: str, file_id: object) -> bytes:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        path = f"{url}/api/0/projects/acme/web/releases/1.0/files/{file_id}/?download=1"
        async with session.get(path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.read()


async def test_a_build_uploaded_through_three_processes_is_served_alike_by_each(
    processes: list[ServerProcess], sentry_cli_3: Path, tmp_path: Path
) -> None:
    build = make_build(tmp_path / "dist")
    async with round_robin([p.url for p in processes]) as (proxy_url, proxy):
        env = {"SENTRY_URL": proxy_url, "SENTRY_AUTH_TOKEN": TOKEN, "SENTRY_ORG": "acme"}
        ok(await asyncio.to_thread(run_cli, sentry_cli_3, tmp_path, "releases", "new", "1.0", "-p", "web", env=env))
        args = ["sourcemaps", "upload", str(tmp_path / "dist"), "--release", "1.0", "-p", "web", "--wait"]
        # sentry-cli blocks; the proxy must keep serving meanwhile.
        ok(await asyncio.to_thread(run_cli, sentry_cli_3, tmp_path, *args, env=env))
        assert len([n for n in proxy.served.values() if n]) == PROCESSES, proxy.served
    for process in processes:
        listed = await _files(process.url)
        assert sorted(str(f["name"]) for f in listed) == sorted(build), process.url
        for entry in listed:
            assert await _download(process.url, entry["id"]) == build[str(entry["name"])]


# The killed process reads chunks through a link that delays every GET by this much, so its
# assembly (one GET per 4 KiB chunk) outlasts the 2 s an assemble call waits for it: the
# process is killed with the task still in its hands. The others reach S3 directly.
SLOW_GET = 0.5
# A short lease for the test (30 s by default): the takeover comes this long after the kill.
LEASE = "2"


async def _task_states(pg_url: str) -> list[tuple[str, str | None]]:
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT state, lease_owner FROM assemble_tasks")
    finally:
        await conn.close()
    return [(r["state"], r["lease_owner"]) for r in rows]


async def test_a_build_survives_a_process_killed_with_kill_9_during_its_assembly(
    tmp_path: Path,
    pg_url: str,
    s3_blob_url: str,
    s3_server: SeaweedServer,
    sentry_cli_3: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sentry-cli 3.x through the proxy; the process its assemble call reaches is killed with
    kill -9 mid-assembly; another process takes the task over once the lease runs out, the
    upload with --wait succeeds, and every survivor lists and serves every file."""
    for name, value in s3_server.environ.items():
        monkeypatch.setenv(name, value)
    shared = ["--database-url", pg_url, "--blob-url", s3_blob_url, "--no-fsync", "--chunk-size", "4KiB"]
    shared += ["--assemble-lease-seconds", LEASE]
    build = make_build(tmp_path / "dist")
    async with round_robin([s3_server.endpoint], get_delay=SLOW_GET) as (slow_s3, _):
        servers = [
            ServerProcess(
                tmp_path / f"p{i}",
                token=TOKEN,
                extra_args=shared,
                env={"AWS_ENDPOINT_URL": slow_s3} if i == 0 else None,
            )
            for i in range(PROCESSES)
        ]
        killed: list[list[tuple[str, str | None]]] = []

        def pin(request: web.Request) -> str | None:
            # Assemble calls go to the process that will die, until it has.
            return servers[0].url if request.path.endswith("/assemble/") and not killed else None

        async def after(request: web.Request, backend: str, status: int, payload: bytes) -> None:
            if killed or backend != servers[0].url or not request.path.endswith("/assemble/"):
                return
            if json.loads(payload).get("state") in ("created", "assembling"):
                states = await _task_states(pg_url)
                servers[0].kill()
                killed.append(states)

        try:
            # In threads: the slow link runs on this loop, and the first process's start-up
            # probe goes through it.
            await asyncio.gather(*(asyncio.to_thread(server.start) for server in servers))
            async with round_robin([p.url for p in servers], pin=pin, after=after) as (proxy_url, proxy):
                env = {"SENTRY_URL": proxy_url, "SENTRY_AUTH_TOKEN": TOKEN, "SENTRY_ORG": "acme"}
                new = ["releases", "new", "1.0", "-p", "web"]
                ok(await asyncio.to_thread(run_cli, sentry_cli_3, tmp_path, *new, env=env))
                args = ["sourcemaps", "upload", str(tmp_path / "dist"), "--release", "1.0", "-p", "web", "--wait"]
                ok(await asyncio.to_thread(run_cli, sentry_cli_3, tmp_path, *args, env=env))
            # It died holding the task: assembling, under its own lease.
            assert killed and [state for state, _ in killed[0]] == ["assembling"], killed
            assert killed[0][0][1] is not None and f":{servers[0].proc.pid}:" in killed[0][0][1]  # type: ignore[union-attr]
            assert servers[0].url in proxy.dead
            assert await _task_states(pg_url) != killed[0]  # finished by another owner
            for process in servers[1:]:
                listed = await _files(process.url)
                assert sorted(str(f["name"]) for f in listed) == sorted(build), process.url
                for entry in listed:
                    assert await _download(process.url, entry["id"]) == build[str(entry["name"])]
        finally:
            for server in servers:
                if server.proc is not None and server.proc.poll() is None:
                    server.stop()
