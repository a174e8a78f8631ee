"""A real `python -m relserver` process over a real socket: uploads, crashes, memory."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from relserver.config import MiB

from .server_process import running_server

TOKEN = "e2e-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


async def test_end_to_end_upload_over_a_real_socket(tmp_path: Path) -> None:
    data = b"//# sourceMappingURL=app.js.map\n"
    with running_server(tmp_path / "data", token=TOKEN) as server:
        async with aiohttp.ClientSession(server.url, headers=HEADERS) as session:
            resp = await session.post("/api/0/projects/acme/web/releases/", json={"version": "1.0"})
            assert resp.status == 201
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("file", data, filename="app.js", content_type="application/javascript")
            form.add_field("name", "~/app.js")
            form.add_field("header", "Sourcemap: app.js.map")
            form.add_field("header", "X-Trace:1")
            resp = await session.post("/api/0/projects/acme/web/releases/1.0/files/", data=form)
            assert resp.status == 201
            body = await resp.json()
        assert body["headers"] == {"Content-Type": "application/javascript", "Sourcemap": "app.js.map", "X-Trace": "1"}
        assert body["sha1"] == hashlib.sha1(data).hexdigest()
    server.wait_for_log('POST /api/0/projects/acme/web/releases/1.0/files/ HTTP/1.1" 201')


async def test_a_201_is_durable_across_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, token=TOKEN) as server:
        async with aiohttp.ClientSession(server.url, headers=HEADERS) as session:
            await session.post("/api/0/projects/acme/web/releases/", json={"version": "1.0"})
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("file", b"must survive", filename="keep.js")
            resp = await session.post("/api/0/projects/acme/web/releases/1.0/files/", data=form)
            assert resp.status == 201
        server.kill()
    with running_server(data_dir, token=TOKEN) as server:
        async with aiohttp.ClientSession(server.url, headers=HEADERS) as session:
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("file", b"must survive", filename="keep.js")
            resp = await session.post("/api/0/projects/acme/web/releases/1.0/files/", data=form)
            assert resp.status == 409
    blob = data_dir / "blobs"
    digest = hashlib.sha1(b"must survive").hexdigest()
    assert (blob / digest[:2] / digest[2:4] / digest).read_bytes() == b"must survive"


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process has ever had, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


# Large enough that buffering the file would show (many times the allowance below),
# small enough to stay a couple of seconds on loopback. scripts/bench.py measures 1 GiB.
LARGE_FILE = 256 * MiB
RSS_ALLOWANCE = 32 * MiB


async def streamed_file(boundary: str, block: bytes, count: int) -> AsyncIterator[bytes]:
    """A multipart body with one `file` part of `count` blocks, generated as it is sent."""
    yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'.encode()
    for _ in range(count):
        yield block
    yield f"\r\n--{boundary}--\r\n".encode()


async def test_memory_is_flat_while_receiving_a_large_file(tmp_path: Path) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha1()
    for _ in range(LARGE_FILE // len(block)):
        digest.update(block)

    with running_server(tmp_path / "data", token=TOKEN, extra_args=["--no-fsync"]) as server:
        assert server.proc is not None
        async with aiohttp.ClientSession(server.url, headers=HEADERS) as session:
            await session.post("/api/0/projects/acme/web/releases/", json={"version": "1.0"})
            # Warm up the code paths once so imports and caches count as idle.
            small = aiohttp.FormData(quote_fields=False)
            small.add_field("file", b"warm", filename="warm.js")
            assert (await session.post("/api/0/projects/acme/web/releases/1.0/files/", data=small)).status == 201
            idle = peak_rss(server.proc.pid)
            resp = await session.post(
                "/api/0/projects/acme/web/releases/1.0/files/",
                data=streamed_file("bigboundary", block, LARGE_FILE // len(block)),
                headers={"Content-Type": "multipart/form-data; boundary=bigboundary"},
            )
            assert resp.status == 201, await resp.text()
            assert (await resp.json())["sha1"] == digest.hexdigest()
        peak = peak_rss(server.proc.pid)
    assert peak - idle < RSS_ALLOWANCE, f"peak RSS grew by {(peak - idle) / MiB:.1f} MiB"


async def test_memory_is_flat_while_sending_a_large_download(tmp_path: Path) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    count = LARGE_FILE // len(block)

    with running_server(tmp_path / "data", token=TOKEN, extra_args=["--no-fsync"]) as server:
        assert server.proc is not None
        async with aiohttp.ClientSession(server.url, headers=HEADERS) as session:
            await session.post("/api/0/projects/acme/web/releases/", json={"version": "1.0"})
            resp = await session.post(
                "/api/0/projects/acme/web/releases/1.0/files/",
                data=streamed_file("b", block, count),
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
            uploaded = await resp.json()
            url = f"/api/0/projects/acme/web/releases/1.0/files/{uploaded['id']}/?download"
            # One small download first, so the code path is warm before the baseline is read.
            warm = await session.get(url, headers={"Range": "bytes=0-9"})
            assert await warm.read() == block[:10]
            idle = peak_rss(server.proc.pid)
            digest = hashlib.sha1()
            received = 0
            async with session.get(url) as resp:
                assert resp.status == 200
                async for chunk in resp.content.iter_chunked(1 << 20):
                    digest.update(chunk)
                    received += len(chunk)
        peak = peak_rss(server.proc.pid)
    assert received == LARGE_FILE
    assert digest.hexdigest() == uploaded["sha1"]
    assert peak - idle < RSS_ALLOWANCE, f"peak RSS grew by {(peak - idle) / MiB:.1f} MiB"
