"""The real sentry-cli 2.58.6 (installed by the test extras) against a real relserver process.

With chunk upload unavailable (its GET answers 404), sentry-cli 2.x takes the per-file
multipart path: the endpoint this suite is about.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relserver.store import Store

from .server_process import ServerProcess, running_server

pytestmark = pytest.mark.cli

TOKEN = "cli-test-token"
SENTRY_CLI_VERSION = "2.58.6"


@pytest.fixture(scope="module")
def sentry_cli() -> Path:
    """The binary the sentry-cli wheel put beside this interpreter; missing is a failure, not a skip."""
    path = Path(sys.executable).parent / "sentry-cli"
    assert path.exists(), f"sentry-cli is not installed next to {sys.executable}: run `make test`"
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.strip() == f"sentry-cli {SENTRY_CLI_VERSION}", version
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(tmp_path / "data", token=TOKEN) as server:
        yield server


def run_cli(
    sentry_cli: Path, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", ""),
        # An empty home: no ~/.sentryclirc of the developer's leaks in.
        "HOME": str(home),
        "SENTRY_DISABLE_UPDATE_CHECK": "1",
        "SENTRY_LOAD_DOTENV": "0",
    }
    return subprocess.run(
        [str(sentry_cli), *args], capture_output=True, text=True, env=base | (env or {}), timeout=120, check=False
    )


def cli_env(server: ServerProcess, token: str = TOKEN) -> dict[str, str]:
    return {"SENTRY_URL": server.url, "SENTRY_AUTH_TOKEN": token, "SENTRY_ORG": "acme"}


async def test_sentry_cli_single_file_upload_then_duplicate(
    sentry_cli: Path, server: ServerProcess, tmp_path: Path
) -> None:
    env = cli_env(server)
    created = run_cli(sentry_cli, tmp_path, "releases", "new", "1.0.0", "-p", "web", env=env)
    assert created.returncode == 0, created.stderr
    assert "Created release 1.0.0" in created.stdout

    source = tmp_path / "app.min.js"
    data = b"function a(){return 1}\n//# sourceMappingURL=app.min.js.map\n"
    source.write_bytes(data)
    upload_args = [
        "releases",
        "files",
        "1.0.0",
        "upload",
        str(source),
        "~/static/app.min.js",
        "-p",
        "web",
        "--dist",
        "d1",
        "-H",
        "Sourcemap: app.min.js.map",
        "-H",
        "X-Foo: bar",
    ]
    first = run_cli(sentry_cli, tmp_path, *upload_args, env=env)
    assert first.returncode == 0, first.stderr
    digest = hashlib.sha1(data).hexdigest()
    assert f"A {digest}  ({len(data)} bytes)" in first.stdout

    second = run_cli(sentry_cli, tmp_path, *upload_args, env=env)
    assert second.returncode == 1
    assert "File already present!" in second.stderr

    async with Store(server.data_dir / "relserver.sqlite3") as store:
        org = await store.get_organization("acme")
        assert org is not None
        release = await store.get_release(org.id, "1.0.0")
        assert release is not None
        record = await store.find_release_file(release.id, _ident("~/static/app.min.js", "d1"))
    assert record is not None
    assert (record.name, record.dist, record.sha1, record.size) == ("~/static/app.min.js", "d1", digest, len(data))
    # sentry-cli sends headers sorted by key after the part's own type.
    assert record.headers == {
        "Content-Type": "application/octet-stream",
        "Sourcemap": "app.min.js.map",
        "X-Foo": "bar",
    }
    blob = server.data_dir / "blobs" / digest[:2] / digest[2:4] / digest
    assert blob.read_bytes() == data
    # The 2.x per-file path first asks for chunk upload and is told it does not exist.
    server.wait_for_log('GET /api/0/organizations/acme/chunk-upload/ HTTP/1.1" 404')


def _ident(name: str, dist: str) -> str:
    return hashlib.sha1(f"{name}\x00\x00{dist}".encode()).hexdigest()


def test_sentry_cli_without_a_project_uses_the_organization_endpoints(
    sentry_cli: Path, server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "lib.js"
    source.write_text("export {}\n")
    result = run_cli(sentry_cli, tmp_path, "releases", "files", "2.0", "upload", str(source), env=cli_env(server))
    assert result.returncode == 0, result.stderr
    server.wait_for_log('POST /api/0/organizations/acme/releases/ HTTP/1.1" 201')
    server.wait_for_log('POST /api/0/organizations/acme/releases/2.0/files/ HTTP/1.1" 201')


def test_sentry_cli_shows_sentrys_error_for_a_bad_token(
    sentry_cli: Path, server: ServerProcess, tmp_path: Path
) -> None:
    result = run_cli(sentry_cli, tmp_path, "releases", "new", "1.0", "-p", "web", env=cli_env(server, "wrong"))
    assert result.returncode == 1
    assert "Invalid token (http status: 401)" in result.stderr


def test_sentry_cli_reads_url_and_org_from_an_org_token(
    sentry_cli: Path, server: ServerProcess, tmp_path: Path
) -> None:
    minted = subprocess.run(
        [
            sys.executable,
            "-m",
            "relserver",
            "token",
            "create",
            "--org-token",
            "--org",
            "acme",
            "--url",
            server.url,
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    token = minted.stdout.strip()
    # No SENTRY_URL, no SENTRY_ORG: both come from the token's payload.
    result = run_cli(sentry_cli, tmp_path, "releases", "new", "3.0", "-p", "web", env={"SENTRY_AUTH_TOKEN": token})
    assert result.returncode == 0, result.stderr
    server.wait_for_log('POST /api/0/projects/acme/web/releases/ HTTP/1.1" 201')
