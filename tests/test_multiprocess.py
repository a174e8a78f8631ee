"""Several relserver processes on one PostgreSQL catalog and one S3 blob store, behind a
round-robin proxy (DESIGN D10): a real sentry-cli 3.x build spreads its requests over them,
and every process then lists and serves the same files."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

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
