"""The real sentry-cli against a real relserver process: 2.58.6 (from the test extras) and
3.8.2 (installed beside the venv by `make test`).

With chunk upload unavailable (its GET answers 404), sentry-cli 2.x takes the per-file
multipart path.
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server without chunk upload: sentry-cli 2.x uses the per-file endpoints."""
    with running_server(tmp_path / "data", token=TOKEN, extra_args=["--upload-mode", "legacy"]) as server:
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


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


class TestSentryCli2LegacyPath:
    """sentry-cli 2.58.6 against a server without chunk upload: the per-file API end to end."""

    def test_list_follows_links_over_150_files_then_delete_by_name_and_all(
        self, sentry_cli: Path, server: ServerProcess, tmp_path: Path
    ) -> None:
        env = cli_env(server)
        build = tmp_path / "build"
        build.mkdir()
        for i in range(150):
            (build / f"chunk{i:03}.js").write_text(f"console.log({i})\n")
        ok(run_cli(sentry_cli, tmp_path, "releases", "new", "1.0", "-p", "web", env=env))
        ok(run_cli(sentry_cli, tmp_path, "releases", "files", "1.0", "upload", str(build), "-p", "web", env=env))

        listing = ok(run_cli(sentry_cli, tmp_path, "releases", "files", "1.0", "list", "-p", "web", env=env))
        listed = {line.split()[1] for line in listing.splitlines() if "~/chunk" in line}
        assert listed == {f"~/chunk{i:03}.js" for i in range(150)}
        server.wait_for_log('GET /api/0/projects/acme/web/releases/1.0/files/?cursor=100:1:0 HTTP/1.1" 200')

        deleted = ok(
            run_cli(sentry_cli, tmp_path, "releases", "files", "1.0", "delete", "~/chunk007.js", "-p", "web", env=env)
        )
        assert "D ~/chunk007.js" in deleted
        listing = ok(run_cli(sentry_cli, tmp_path, "releases", "files", "1.0", "list", "-p", "web", env=env))
        assert "~/chunk007.js" not in listing and "~/chunk008.js" in listing

        everything = ok(
            run_cli(sentry_cli, tmp_path, "releases", "files", "1.0", "delete", "--all", "-p", "web", env=env)
        )
        assert "All files deleted." in everything
        listing = ok(run_cli(sentry_cli, tmp_path, "releases", "files", "1.0", "list", "-p", "web", env=env))
        assert "~/chunk" not in listing

    def test_upload_sourcemaps_twice_replaces_the_files(
        self, sentry_cli: Path, server: ServerProcess, tmp_path: Path
    ) -> None:
        env = cli_env(server)
        build = tmp_path / "dist"
        build.mkdir()
        (build / "app.min.js").write_text("function a(){}\n//# sourceMappingURL=app.min.js.map\n")
        (build / "app.min.js.map").write_text('{"version":3,"sources":["app.js"],"names":[],"mappings":"AAAA"}')
        args = ["releases", "files", "2.0", "upload-sourcemaps", str(build), "-p", "web"]
        ok(run_cli(sentry_cli, tmp_path, "releases", "new", "2.0", "-p", "web", env=env))
        ok(run_cli(sentry_cli, tmp_path, *args, env=env))
        (build / "app.min.js").write_text("function b(){}\n//# sourceMappingURL=app.min.js.map\n")
        ok(run_cli(sentry_cli, tmp_path, *args, env=env))
        # The second run listed the release, deleted what it was about to replace, re-uploaded.
        server.wait_for_log('DELETE /api/0/projects/acme/web/releases/2.0/files/1/ HTTP/1.1" 204')
        listing = ok(run_cli(sentry_cli, tmp_path, "releases", "files", "2.0", "list", "-p", "web", env=env))
        assert "~/app.min.js " in listing and "~/app.min.js.map" in listing
        # The minified file carries the Sourcemap header sentry-cli added (the Source Map column).
        minified = next(line for line in listing.splitlines() if "~/app.min.js " in line)
        assert "app.min.js.map" in minified

    def test_release_commands(self, sentry_cli: Path, server: ServerProcess, tmp_path: Path) -> None:
        env = cli_env(server)
        assert "Created release 3.0" in ok(
            run_cli(sentry_cli, tmp_path, "releases", "new", "3.0", "-p", "web", env=env)
        )
        info = ok(run_cli(sentry_cli, tmp_path, "releases", "info", "3.0", "-p", "web", env=env))
        assert "3.0" in info
        assert "3.0" in ok(run_cli(sentry_cli, tmp_path, "releases", "list", "-p", "web", env=env))
        assert "Finalized release 3.0" in ok(
            run_cli(sentry_cli, tmp_path, "releases", "finalize", "3.0", "-p", "web", env=env)
        )
        server.wait_for_log('PUT /api/0/projects/acme/web/releases/3.0/ HTTP/1.1" 200')
        assert "Deleted release 3.0" in ok(
            run_cli(sentry_cli, tmp_path, "releases", "delete", "3.0", "-p", "web", env=env)
        )
        missing = run_cli(sentry_cli, tmp_path, "releases", "info", "3.0", "-p", "web", env=env)
        assert missing.returncode == 1


class TestSentryCli3:
    def test_release_commands_and_info(self, sentry_cli_3: Path, server: ServerProcess, tmp_path: Path) -> None:
        env = cli_env(server)
        assert "Created release 4.0" in ok(
            run_cli(sentry_cli_3, tmp_path, "releases", "new", "4.0", "-p", "web", env=env)
        )
        server.wait_for_log('POST /api/0/organizations/acme/releases/ HTTP/1.1" 201')
        assert "4.0" in ok(run_cli(sentry_cli_3, tmp_path, "releases", "info", "4.0", env=env))
        assert "4.0" in ok(run_cli(sentry_cli_3, tmp_path, "releases", "list", "-p", "web", env=env))
        assert "Finalized release 4.0" in ok(run_cli(sentry_cli_3, tmp_path, "releases", "finalize", "4.0", env=env))
        server.wait_for_log('PUT /api/0/organizations/acme/releases/4.0/ HTTP/1.1" 200')
        assert "Deleted release 4.0" in ok(run_cli(sentry_cli_3, tmp_path, "releases", "delete", "4.0", env=env))
        info = ok(run_cli(sentry_cli_3, tmp_path, "info", env=env))
        assert "project:releases" in info
