"""The real sentry-cli against a real relserver process: 2.58.6 (from the test extras) and
3.8.2 (installed beside the venv by `make test`).

With chunk upload unavailable (its GET answers 404), sentry-cli 2.x takes the per-file
multipart path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relserver.api.chunks import LEGACY_MODE_VS_CLI_3
from relserver.sentry import release_file_ident
from relserver.storage.sql.sqlite import SqliteCatalog

from .conftest import sentry_cli_env
from .server_process import ServerProcess, running_server

pytestmark = pytest.mark.cli

TOKEN = "cli-test-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server without chunk upload: sentry-cli 2.x uses the per-file endpoints."""
    with running_server(tmp_path / "data", token=TOKEN, extra_args=["--upload-mode", "legacy"]) as server:
        yield server


def run_cli(
    sentry_cli: Path, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = sentry_cli_env(home)
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

    async with SqliteCatalog(server.data_dir / "relserver.sqlite3") as catalog, catalog.read() as tx:
        org = await tx.organizations.get("acme")
        assert org is not None
        release = await tx.releases.get(org.id, "1.0.0")
        assert release is not None
        record = await tx.files.find(release.id, release_file_ident("~/static/app.min.js", "d1"))
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

    def test_new_info_list_finalize_and_delete_succeed_and_info_after_delete_exits_1(
        self, sentry_cli: Path, server: ServerProcess, tmp_path: Path
    ) -> None:
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

    def test_legacy_mode_logs_why_a_3x_upload_has_nowhere_to_go(
        self, sentry_cli_3: Path, server: ServerProcess, tmp_path: Path
    ) -> None:
        """3.x uploads only in chunks; against --upload-mode legacy it says only "organization
        not found", so the server log has to say why."""
        (tmp_path / "dist").mkdir()
        (tmp_path / "dist" / "app.js").write_text("function a(){}\n")
        result = run_cli(
            sentry_cli_3,
            tmp_path,
            "sourcemaps",
            "upload",
            str(tmp_path / "dist"),
            "--release",
            "1.0",
            "-p",
            "web",
            env=cli_env(server),
        )
        assert result.returncode != 0
        server.wait_for_log(
            f"WARNING relserver.api.chunks: {LEGACY_MODE_VS_CLI_3} (GET /api/0/organizations/acme/chunk-upload/)"
        )


# --- chunk upload and artifact bundles ----------------------------------------------------------


def make_build(root: Path, *, vendor: str = "var v=1;\n") -> dict[str, bytes]:
    """A small build: a minified file with its map, and a vendor script; returns url → bytes."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    # Enough hex noise that the bundle spans several 4 KiB chunks.
    noise = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(600))
    app = f'function a(){{return "{noise}"}}\n//# sourceMappingURL=app.min.js.map\n'
    mapping = '{"version":3,"file":"app.min.js","sources":["app.js"],"names":[],"mappings":"AAAA"}'
    (root / "app.min.js").write_text(app)
    (root / "app.min.js.map").write_text(mapping)
    (root / "sub" / "vendor.js").write_text(vendor)
    return {
        "~/app.min.js": app.encode(),
        "~/app.min.js.map": mapping.encode(),
        "~/sub/vendor.js": vendor.encode(),
    }


@pytest.fixture
def chunked_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Today's Sentry: chunk upload with artifact bundles, small chunks so bundles span many."""
    with running_server(tmp_path / "data", token=TOKEN, extra_args=["--chunk-size", "4KiB"]) as server:
        yield server


async def listed_files(server: ServerProcess, version: str) -> dict[str, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(server.url, headers=headers) as session:
        resp = await session.get(f"/api/0/projects/acme/web/releases/{version}/files/")
        assert resp.status == 200, await resp.text()
        return {f["name"]: f for f in await resp.json()}


async def download(server: ServerProcess, version: str, file_id: str) -> bytes:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(server.url, headers=headers) as session:
        resp = await session.get(f"/api/0/projects/acme/web/releases/{version}/files/{file_id}/?download")
        assert resp.status == 200
        return await resp.read()


def db_value(server: ServerProcess, sql: str) -> Any:
    with contextlib.closing(sqlite3.connect(server.data_dir / "relserver.sqlite3")) as conn:
        return conn.execute(sql).fetchone()[0]


class TestSentryCli3SourceMaps:
    async def test_upload_lists_and_downloads_every_file_identically(
        self, sentry_cli_3: Path, chunked_server: ServerProcess, tmp_path: Path
    ) -> None:
        env = cli_env(chunked_server)
        local = make_build(tmp_path / "dist")
        out = ok(
            run_cli(
                sentry_cli_3,
                tmp_path,
                "sourcemaps",
                "upload",
                str(tmp_path / "dist"),
                "--release",
                "1.0",
                "-p",
                "web",
                "--wait",
                env=env,
            )
        )
        assert "File processing complete" in out
        # 3.x never creates the release; the files show once it exists.
        ok(run_cli(sentry_cli_3, tmp_path, "releases", "new", "1.0", "-p", "web", env=env))
        files = await listed_files(chunked_server, "1.0")
        assert set(files) == set(local)
        for url, data in local.items():
            body = await download(chunked_server, "1.0", files[url]["id"])
            assert hashlib.sha1(body).hexdigest() == files[url]["sha1"]
            if url.endswith(".map"):
                assert json.loads(body) == json.loads(data)  # sentry-cli re-serialises maps
            else:
                assert body == data
        assert files["~/app.min.js"]["headers"].get("sourcemap") == "app.min.js.map"
        # Many chunks were needed for this bundle.
        assert db_value(chunked_server, "SELECT count(*) FROM chunk_owners") > 3

    async def test_the_same_upload_again_sends_nothing(
        self, sentry_cli_3: Path, chunked_server: ServerProcess, tmp_path: Path
    ) -> None:
        env = cli_env(chunked_server)
        make_build(tmp_path / "dist")
        args = ["sourcemaps", "upload", str(tmp_path / "dist"), "--release", "1.0", "-p", "web", "--wait"]
        ok(run_cli(sentry_cli_3, tmp_path, *args, env=env))
        second = run_cli(sentry_cli_3, tmp_path, *args, env=env)
        assert second.returncode == 0, second.stderr
        assert "Nothing to upload, all files are on the server" in second.stdout + second.stderr

    async def test_a_changed_file_sends_only_its_chunks(
        self, sentry_cli_3: Path, chunked_server: ServerProcess, tmp_path: Path
    ) -> None:
        env = cli_env(chunked_server)
        make_build(tmp_path / "dist")
        args = ["sourcemaps", "upload", str(tmp_path / "dist"), "--release", "1.0", "-p", "web", "--wait"]
        ok(run_cli(sentry_cli_3, tmp_path, *args, env=env))
        before = db_value(chunked_server, "SELECT count(*) FROM chunk_owners")
        make_build(tmp_path / "dist", vendor="var v=2;\n")
        ok(run_cli(sentry_cli_3, tmp_path, *args, env=env))
        sent = db_value(chunked_server, "SELECT count(*) FROM chunk_owners") - before
        request = json.loads(
            db_value(chunked_server, "SELECT request FROM assemble_tasks ORDER BY date_updated DESC LIMIT 1")
        )
        assert 0 < sent < len(request["chunks"])
        ok(run_cli(sentry_cli_3, tmp_path, "releases", "new", "1.0", "-p", "web", env=env))
        files = await listed_files(chunked_server, "1.0")
        assert await download(chunked_server, "1.0", files["~/sub/vendor.js"]["id"]) == b"var v=2;\n"

    async def test_injected_debug_ids_are_found_by_artifact_lookup(
        self, sentry_cli_3: Path, chunked_server: ServerProcess, tmp_path: Path
    ) -> None:
        env = cli_env(chunked_server)
        make_build(tmp_path / "dist")
        ok(run_cli(sentry_cli_3, tmp_path, "sourcemaps", "inject", str(tmp_path / "dist"), env=env))
        debug_ids = {}
        for script in ("app.min.js", "sub/vendor.js"):
            text = (tmp_path / "dist" / script).read_text()
            debug_ids[script] = text.rsplit("//# debugId=", 1)[1].strip()
        # No release: the debug ids are what ties the files together.
        ok(
            run_cli(
                sentry_cli_3, tmp_path, "sourcemaps", "upload", str(tmp_path / "dist"), "-p", "web", "--wait", env=env
            )
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(chunked_server.url, headers=headers) as session:
            for script, debug_id in debug_ids.items():
                resp = await session.get(f"/api/0/projects/acme/web/artifact-lookup/?debug_id={debug_id}")
                (hit,) = await resp.json()
                assert (hit["type"], hit["resolved_with"]) == ("bundle", "debug-id"), script
            (bundle,) = await (await session.get("/api/0/projects/acme/web/files/artifact-bundles/")).json()
            files = await (
                await session.get(f"/api/0/projects/acme/web/artifact-bundles/{bundle['bundleId']}/files/")
            ).json()
        found = {f["filePath"]: f["debugId"] for f in files["files"]}
        assert found["~/app.min.js"] == debug_ids["app.min.js"]
        assert found["~/app.min.js.map"] == debug_ids["app.min.js"]
        assert found["~/sub/vendor.js"] == debug_ids["sub/vendor.js"]


@pytest.mark.parametrize("mode", ["artifact-bundles", "release-bundles", "legacy"])
@pytest.mark.parametrize("command", ["sourcemaps-upload", "upload-sourcemaps"])
async def test_sentry_cli_2_uploads_in_every_mode(sentry_cli: Path, tmp_path: Path, mode: str, command: str) -> None:
    """Whatever path the server's advert sends 2.x down, the same files end up listed."""
    with running_server(tmp_path / "data", token=TOKEN, extra_args=["--upload-mode", mode]) as server:
        env = cli_env(server)
        local = make_build(tmp_path / "dist")
        ok(run_cli(sentry_cli, tmp_path, "releases", "new", "1.0", "-p", "web", env=env))
        if command == "sourcemaps-upload":
            args = ["sourcemaps", "upload", str(tmp_path / "dist"), "--release", "1.0", "-p", "web", "--wait"]
        else:
            args = ["releases", "files", "1.0", "upload-sourcemaps", str(tmp_path / "dist"), "-p", "web", "--wait"]
        out = ok(run_cli(sentry_cli, tmp_path, *args, env=env))
        expected_type = {"artifact-bundles": "artifact bundle", "release-bundles": "release bundle"}
        assert f"Upload type: {expected_type.get(mode, 'single file/legacy upload')}" in out
        files = await listed_files(server, "1.0")
        assert set(files) == set(local)
        body = await download(server, "1.0", files["~/sub/vendor.js"]["id"])
        assert body == local["~/sub/vendor.js"]
