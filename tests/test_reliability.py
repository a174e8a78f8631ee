"""What relserver survives: a full disk, SIGTERM mid-upload, every auth failure on every
endpoint, and hostile input. The long runs (kill -9 loops, soak) live in scripts/torture.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relserver import auth
from relserver.api.common import required_scopes
from relserver.config import Config, KiB, MiB
from relserver.datadir import LOCK_NAME
from relserver.keys import catalog_key

from .bundle_helpers import make_bundle, upload_bundle
from .conftest import (
    Client,
    ClientFactory,
    bearer,
    create_release,
    mint_token,
    missing_system_part,
    sha1,
    stored_sha1s,
    temp_files,
    upload,
)
from .sentry_shape import sentry_shape_problem
from .server_process import running_server

TOKEN = "reliability-token"


# --- a full disk -----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (needs root, as CI has); skipped where mounting is not allowed, except under CI."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if result.returncode:
        missing_system_part(f"a tmpfs mount (root can mount one): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path: Path) -> None:
    """Write zeros until the disk refuses."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


@pytest.mark.disk_only
async def test_a_full_disk_answers_507_stores_nothing_and_recovers(
    small_disk: Path, make_client: ClientFactory, config: Config
) -> None:
    disk_config = config.with_overrides(data_dir=small_disk / "data", max_file_size=2 * MiB, fsync=True)
    client = await make_client(disk_config)
    await create_release(client)
    assert (await upload(client, b"before", name="~/before.js")).status == 201
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (free - 64 * KiB))

    resp = await upload(client, os.urandom(512 * KiB), name="~/big.js")
    assert resp.status == 507
    body = await resp.json()
    assert "disk is full" in body["detail"]
    assert temp_files(disk_config) == []
    catalog = client.app[catalog_key]
    assert (await catalog.check()).release_files == 1

    # A small file is kept in memory and meets the full disk only in the group commit.
    _fill(small_disk / "filler-rest")
    small = os.urandom(4 * KiB)
    resp = await upload(client, small, name="~/small.js")
    assert resp.status == 507
    assert temp_files(disk_config) == []
    assert sha1(small) not in set(stored_sha1s(disk_config))
    assert (await catalog.check()).release_files == 1

    filler.unlink()
    (small_disk / "filler-rest").unlink()
    assert (await upload(client, os.urandom(512 * KiB), name="~/big.js")).status == 201
    assert (await upload(client, small, name="~/small.js")).status == 201
    assert (await catalog.check()).release_files == 3
    assert (await catalog.check()).integrity == "ok"


# --- SIGTERM during an upload ----------------------------------------------------------------


async def test_sigterm_lets_an_upload_in_flight_finish_and_exits_0(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    piece = b"s" * (64 * KiB)

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="slow.js"\r\n\r\n'
        for _ in range(20):
            yield piece
            await asyncio.sleep(0.05)
        yield b"\r\n--b--\r\n"

    with running_server(data_dir, token=TOKEN) as server:
        assert server.proc is not None
        async with aiohttp.ClientSession(server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            await session.post("/api/0/projects/acme/web/releases/", json={"version": "1.0"})
            upload_task = asyncio.ensure_future(
                session.post(
                    "/api/0/projects/acme/web/releases/1.0/files/",
                    data=slow_body(),
                    headers={"Content-Type": "multipart/form-data; boundary=b"},
                )
            )
            await asyncio.sleep(0.3)
            server.proc.send_signal(signal.SIGTERM)
            resp = await upload_task
            assert resp.status == 201
            started = time.monotonic()
            code = await asyncio.to_thread(server.proc.wait, 20)
            assert code == 0
            assert time.monotonic() - started < 15
    assert list((data_dir / "tmp").iterdir()) == []
    with contextlib.closing(sqlite3.connect(data_dir / "relserver.sqlite3")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM release_files").fetchone()[0] == 1


# --- who may do what, on every endpoint ------------------------------------------------------

SAMPLE = {
    "org": "acme",
    "project": "web",
    "version": "1.0",
    "file_id": "1",
    "bundle_id": "b0b0b0b0-0000-4000-8000-000000000001",
}
DENIED = {"detail": "You do not have permission to perform this action."}


def authenticated_routes(client: Client) -> list[tuple[str, str]]:
    """Every (method, path) that needs a token, straight from the route table."""
    routes = []
    for route in client.app.router.routes():
        if route.method == "HEAD" or required_scopes(route.handler) is None:
            continue
        info = route.resource.get_info() if route.resource else {}
        template = info.get("formatter") or info.get("path")
        assert template, route
        routes.append((route.method, template.format(**SAMPLE)))
    return sorted(set(routes))


@pytest.fixture
async def matrix(client: Client) -> dict[str, str]:
    """Data in two orgs, and a token for each way of being refused."""
    await create_release(client)
    await upload(client, b"acme data")
    await create_release(client, org="other")
    revoked = await mint_token(client, scopes=["project:releases"])
    async with client.app[catalog_key].write() as tx:
        (record,) = [t for t in await tx.tokens.all() if t.last_characters == revoked[-4:]]
        await tx.tokens.revoke(record.id)
    return {
        "unknown": auth.new_user_token(),
        "revoked": revoked,
        "no_scope": await mint_token(client, scopes=["event:read"]),
        "other_org": await mint_token(client, scopes=sorted(auth.ADMIN_SCOPES), organization="other"),
    }


async def test_every_endpoint_refuses_every_bad_credential_with_sentrys_bodies(
    client: Client, matrix: dict[str, str]
) -> None:
    routes = authenticated_routes(client)
    assert len(routes) > 25, routes
    cases: list[tuple[str, dict[str, str], int, dict[str, Any]]] = [
        ("none", {}, 401, {"detail": "Authentication credentials were not provided."}),
        ("malformed", {"Authorization": "Bearer"}, 401, {"detail": "Invalid token header. No credentials provided."}),
        (
            "spaces",
            {"Authorization": "Bearer a b"},
            401,
            {"detail": "Invalid token header. Token string should not contain spaces."},
        ),
        ("unknown", bearer(matrix["unknown"]), 401, {"detail": "Invalid token"}),
        ("revoked", bearer(matrix["revoked"]), 401, {"detail": "Invalid token"}),
        ("no_scope", bearer(matrix["no_scope"]), 403, DENIED),
        ("other_org", bearer(matrix["other_org"]), 403, DENIED),
    ]
    for method, path in routes:
        for name, headers, status, body in cases:
            resp = await client.request(method, path, headers=headers, json={} if method in ("POST", "PUT") else None)
            assert resp.status == status, (name, method, path, await resp.text())
            assert await resp.json() == body, (name, method, path)
            if status == 401:
                assert resp.headers["WWW-Authenticate"] == 'xBasic realm="api"'


async def test_another_orgs_token_never_sees_this_orgs_data(client: Client, matrix: dict[str, str]) -> None:
    token = matrix["other_org"]
    for path in (
        "/api/0/organizations/acme/releases/",
        "/api/0/organizations/acme/releases/1.0/files/",
        "/api/0/projects/acme/web/releases/1.0/files/1/?download",
        "/api/0/projects/acme/web/files/artifact-bundles/",
        "/api/0/projects/acme/web/artifact-lookup/?release=1.0&url=app",
    ):
        resp = await client.get(path, headers=bearer(token))
        assert resp.status == 403, path
        assert b"acme data" not in await resp.read()
    # Its own organization works.
    assert (await client.get("/api/0/organizations/other/releases/", headers=bearer(token))).status == 200


# --- hostile input ---------------------------------------------------------------------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


async def assert_clean_4xx(resp: aiohttp.ClientResponse) -> None:
    """Not a 5xx, and every error Sentry-shaped: a known JSON key, DRF field errors, or an
    empty body where Sentry sends one."""
    problem = sentry_shape_problem(resp.status, resp.content_type, await resp.read())
    assert problem is None, f"{resp.method} {resp.url}: {problem}"


@pytest.fixture
def fuzz_config(tmp_path: Path) -> Config:
    return Config(data_dir=tmp_path / "fuzz", token="fuzz", max_file_size=64 * KiB, fsync=False, max_parts=50)


@pytest.fixture
def fuzz_server(fuzz_config: Config) -> Iterator[tuple[str, Config]]:
    from relserver.testing import RelServer

    with RelServer(fuzz_config.data_dir, token="fuzz", max_file_size=64 * KiB, max_parts=50) as server:
        server.create_release("1.0")
        yield server.url, fuzz_config


_multipart_noise = st.one_of(
    st.binary(max_size=2048),
    st.builds(
        lambda head, body, tail: head + body + tail,
        st.sampled_from([b"--b\r\n", b"--b\n", b"--x\r\n", b""]),
        st.one_of(
            st.binary(max_size=1024),
            st.builds(
                lambda n, name, fn: (
                    f'Content-Disposition: form-data; name="{name}"'.encode()
                    + (b'; filename="' + fn + b'"' if fn is not None else b"")
                    + b"\r\n\r\n"
                    + b"x" * n
                ),
                st.integers(0, 3000),
                st.sampled_from(["file", "name", "header", "dist", "", "\x00", "é"]),
                st.one_of(st.none(), st.binary(max_size=40)),
            ),
        ),
        st.sampled_from([b"\r\n--b--\r\n", b"--b--", b"", b"\r\n--b\r\n"]),
    ),
)


@FUZZ
@given(
    body=_multipart_noise,
    content_type=st.sampled_from(
        [
            "multipart/form-data; boundary=b",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "text/plain",
            "multipart/form-data; boundary=" + "x" * 300,
        ]
    ),
)
def test_malformed_multipart_never_gets_a_5xx(fuzz_server: tuple[str, Config], body: bytes, content_type: str) -> None:
    url, config = fuzz_server

    async def go() -> None:
        async with aiohttp.ClientSession(url, headers={"Authorization": "Bearer fuzz"}) as session:
            for path in ("/api/0/projects/acme/web/releases/1.0/files/", "/api/0/organizations/acme/chunk-upload/"):
                resp = await session.post(path, data=body, headers={"Content-Type": content_type})
                await assert_clean_4xx(resp)

    asyncio.run(go())
    assert list((config.data_dir / "tmp").iterdir()) == []


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(
    payload=_json_values
    | st.builds(
        lambda d: {"version": "1", "projects": ["web"], **d},
        st.dictionaries(
            st.sampled_from(
                [
                    "version",
                    "projects",
                    "checksum",
                    "chunks",
                    "dist",
                    "name",
                    "ref",
                    "status",
                    "dateReleased",
                    "environment",
                ]
            ),
            _json_values,
        ),
    )
)
def test_odd_json_never_gets_a_5xx(fuzz_server: tuple[str, Config], payload: Any) -> None:
    url, _ = fuzz_server

    async def go() -> None:
        async with aiohttp.ClientSession(url, headers={"Authorization": "Bearer fuzz"}) as session:
            for method, path in (
                ("POST", "/api/0/organizations/acme/releases/"),
                ("PUT", "/api/0/organizations/acme/releases/1.0/"),
                ("POST", "/api/0/organizations/acme/artifactbundle/assemble/"),
                ("POST", "/api/0/organizations/acme/releases/1.0/assemble/"),
                ("POST", "/api/0/organizations/acme/releases/1.0/deploys/"),
                ("PUT", "/api/0/projects/acme/web/releases/1.0/files/1/"),
            ):
                resp = await session.request(method, path, json=payload)
                await assert_clean_4xx(resp)

    asyncio.run(go())


async def test_deeply_nested_json_is_a_clean_400(client: Client) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    resp = await client.post(
        "/api/0/organizations/acme/releases/",
        data=deep.encode(),
        headers={**bearer(), "Content-Type": "application/json"},
    )
    assert resp.status in (400, 413)
    resp = await client.post(
        "/api/0/organizations/acme/artifactbundle/assemble/",
        data=deep.encode(),
        headers={**bearer(), "Content-Type": "application/json"},
    )
    assert resp.status in (400, 413)


@FUZZ
@given(segment=st.text(min_size=1, max_size=300))
def test_odd_paths_never_get_a_5xx(fuzz_server: tuple[str, Config], segment: str) -> None:
    url, _ = fuzz_server
    from urllib.parse import quote

    async def go() -> None:
        async with aiohttp.ClientSession(url, headers={"Authorization": "Bearer fuzz"}) as session:
            for template in (
                "/api/0/organizations/{}/releases/",
                "/api/0/projects/acme/web/releases/{}/files/",
                "/api/0/{}",
            ):
                resp = await session.get(template.format(quote(segment, safe="")))
                await assert_clean_4xx(resp)

    asyncio.run(go())


@pytest.mark.disk_only
async def test_zips_with_traversal_names_and_duplicates_are_stored_safely(client: Client, config: Config) -> None:
    """A member path or URL with `..` is only a string: listed and served under exactly that URL,
    stored under its sha1. A member the manifest does not name is ignored; of a name that occurs
    twice, the later copy is the one stored, as zipfile reads the central directory."""
    await create_release(client)
    evil_url = "~/../../../../etc/evil.js"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # the point of this zip
        bundle = make_bundle(
            {"~/a.js": b"first copy", evil_url: b"evil"},  # evil_url's member is files/_/_/../../../../etc/evil.js
            extra_members=[("../../../../etc/unlisted", b"unlisted"), ("files/_/_/a.js", b"second copy")],
            release="1.0",
        )
    result = await upload_bundle(client, bundle)
    assert result == {"state": "ok", "detail": None, "missingChunks": []}

    release_files = "/api/0/projects/acme/web/releases/1.0/files/"
    listed = await (await client.get(release_files, headers=bearer())).json()
    assert [(f["name"], f["sha1"]) for f in listed] == [(evil_url, sha1(b"evil")), ("~/a.js", sha1(b"second copy"))]
    for record, data in zip(listed, [b"evil", b"second copy"], strict=True):
        resp = await client.get(f"{release_files}{record['id']}/?download", headers=bearer())
        assert (resp.status, await resp.read()) == (200, data)
    (item,) = await (await client.get("/api/0/projects/acme/web/files/artifact-bundles/", headers=bearer())).json()
    bundle_url = f"/api/0/projects/acme/web/artifact-bundles/{item['bundleId']}/files/"
    members = (await (await client.get(bundle_url, headers=bearer())).json())["files"]
    assert [m["filePath"] for m in members] == [evil_url, "~/a.js"]
    resp = await client.get(f"{bundle_url}{members[0]['id']}/", headers=bearer())
    assert (resp.status, await resp.read()) == (200, b"evil")

    # No name became a path: nothing outside the data dir, and in it, besides the database,
    # only blobs at their content address: the chunks and the bundle, whose members are served
    # from inside it (DESIGN D9); nothing was extracted, not even the unlisted member.
    assert [p.name for p in config.data_dir.parent.iterdir()] == [config.data_dir.name]
    chunks = {sha1(bundle[i : i + 1024]) for i in range(0, len(bundle), 1024)}
    blobs = chunks | {sha1(bundle)}
    own = (config.db_path.name, LOCK_NAME)
    stored = [p for p in config.data_dir.rglob("*") if p.is_file() and not p.name.startswith(own)]
    assert sorted(p.relative_to(config.data_dir).as_posix() for p in stored) == sorted(
        f"{config.blob_dir.relative_to(config.data_dir).as_posix()}/{s[:2]}/{s[2:4]}/{s}" for s in blobs
    )


@pytest.mark.parametrize(
    "part_head",
    [
        pytest.param(
            b'Content-Disposition: form-data; name="file"; filename="' + b"a" * 100_000 + b'"', id="huge-header"
        ),
        pytest.param(b'Content-Disposition: form-data; name="fi\x00le"; filename="a\x00.js"', id="nul"),
        pytest.param(b'Content-Disposition: form-data; name="file"; filename="\xff\xfe.js"', id="invalid-utf8"),
        pytest.param(b"X-Nonsense: " + b"\xff" * 10 + b"\r\nContent-Disposition: form-data; name=file", id="no-quotes"),
    ],
)
async def test_odd_part_headers_get_a_clean_answer(client: Client, config: Config, part_head: bytes) -> None:
    await create_release(client)
    body = (
        b"--b\r\n"
        + part_head
        + b"\r\n\r\ndata\r\n--b\r\n"
        + b'Content-Disposition: form-data; name="name"\r\n\r\n~/\xff\x00.js\r\n--b--\r\n'
    )
    resp = await client.post(
        "/api/0/projects/acme/web/releases/1.0/files/",
        data=body,
        headers={**bearer(), "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert resp.status < 500, await resp.text()
    assert temp_files(config) == []
    assert (await upload(client, b"still serving", name="~/after.js")).status == 201
