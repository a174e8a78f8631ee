"""DESIGN invariant 10, a data dir has one owner, with real processes: the lock, which commands
run beside a server, what the sweep may delete, and data dirs that cannot be written."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from relserver import cli, services
from relserver.config import MiB
from relserver.datadir import DataDirInUse, DataDirLock, describe_error
from relserver.storage.blobs.disk import DiskBlobStore
from relserver.storage.sql.dialect import utcnow
from relserver.storage.sql.sqlite_schema import MIGRATIONS

from .conftest import blob_path, missing_system_part, sha1
from .server_process import run_relserver, running_server

TOKEN = "datadir-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command (never a traceback), without `relserver: `."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("relserver: "), result.stderr
    return result.stderr.removeprefix("relserver: ").rstrip("\n")


def in_use(data_dir: Path, pid: int) -> str:
    return f"{data_dir} is in use by another relserver (pid {pid})"


async def held_upload(boundary: str, release: asyncio.Event) -> AsyncIterator[bytes]:
    """A multipart body whose file part stops after 2 MiB until `release` is set."""
    yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.js"\r\n\r\n'.encode()
    for _ in range(2):
        yield b"x" * MiB
    await release.wait()
    for _ in range(2):
        yield b"y" * MiB
    yield f"\r\n--{boundary}--\r\n".encode()


async def wait_for(condition: Callable[[], bool], tries: int = 500) -> None:
    """Poll every 20 ms (the server is another process: there is no event to wait on)."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


# --- the lock --------------------------------------------------------------------------------


async def test_a_second_server_on_the_same_data_dir_refuses_to_start_naming_the_pid(tmp_path: Path) -> None:
    """The bug this closes: the second server's start-up sweep deleted the first one's 200 MB
    upload in flight, which then answered 500."""
    data_dir = tmp_path / "data"
    with running_server(data_dir, token=TOKEN, extra_args=["--no-fsync"]) as server:
        assert server.proc is not None
        async with aiohttp.ClientSession(server.url, headers=HEADERS) as session:
            assert (await session.post("/api/0/projects/acme/web/releases/", json={"version": "1.0"})).status == 201
            release = asyncio.Event()
            upload = asyncio.ensure_future(
                session.post(
                    "/api/0/projects/acme/web/releases/1.0/files/",
                    data=held_upload("b", release),
                    headers={"Content-Type": "multipart/form-data; boundary=b"},
                )
            )
            await wait_for(lambda: any((data_dir / "tmp").iterdir()))

            second = await asyncio.to_thread(run_relserver, "--port", "0", "--data-dir", str(data_dir))
            assert one_line(second) == f"{in_use(data_dir, server.proc.pid)}; a data dir has one owner"
            assert second.returncode == 1
            assert second.stdout == ""

            release.set()
            resp = await upload
            assert resp.status == 201, await resp.text()
            assert (await resp.json())["size"] == 4 * MiB
    # The lock goes with its process: the same data dir starts again at once.
    with running_server(data_dir, token=TOKEN):
        pass


def test_the_lock_file_names_the_serving_pid_and_is_free_again_after_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, token=TOKEN) as server:
        assert server.proc is not None
        assert (data_dir / "lock").read_text() == f"{server.proc.pid}\n"
        with pytest.raises(DataDirInUse) as refused:
            DataDirLock(data_dir).acquire()
        assert refused.value.pid == server.proc.pid
        server.kill()
    with DataDirLock(data_dir):
        assert (data_dir / "lock").read_text() == f"{os.getpid()}\n"


# --- commands beside a running server ----------------------------------------------------------


async def test_token_and_project_commands_work_beside_a_running_server(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    with running_server(tmp_path / "data", token=TOKEN, extra_args=["--no-auto-create"]) as server:
        async with aiohttp.ClientSession(server.url) as session:
            # With --no-auto-create the project exists for the server only once the command made it.
            url = "/api/0/organizations/shop/releases/"
            resp = await session.post(url, json={"version": "0", "projects": ["app"]}, headers=HEADERS)
            assert resp.status == 404, await resp.text()
            made = await asyncio.to_thread(run_relserver, "project", "create", "shop", "app", "--data-dir", data_dir)
            assert (made.returncode, made.stdout) == (0, "shop/app\n"), made.stderr

            # The server keeps writing while the commands run: WAL and the busy timeout keep
            # both sides whole.
            async def keep_writing(stop: asyncio.Event) -> int:
                count = 0
                while not stop.is_set():
                    body = {"version": f"v{count}", "projects": ["app"]}
                    assert (await session.post(url, json=body, headers=HEADERS)).status == 201
                    count += 1
                return count

            stop = asyncio.Event()
            writer = asyncio.ensure_future(keep_writing(stop))
            try:
                created = await asyncio.to_thread(
                    run_relserver, "--data-dir", data_dir, "token", "create", "--org", "shop", "--label", "beside"
                )
                assert created.returncode == 0, created.stderr
                minted = {"Authorization": f"Bearer {created.stdout.strip()}"}
                assert (await session.get("/api/0/organizations/shop/releases/", headers=minted)).status == 200

                listing = await asyncio.to_thread(run_relserver, "token", "list", "--data-dir", data_dir)
                (line,) = [row for row in listing.stdout.splitlines() if "beside" in row]
                token_id = line.split()[0]
                revoked = await asyncio.to_thread(run_relserver, "token", "revoke", token_id, "--data-dir", data_dir)
                assert revoked.returncode == 0, revoked.stderr
                assert (await session.get("/api/0/organizations/shop/releases/", headers=minted)).status == 401
            finally:
                # Let the request in flight finish: a dropped connection is not what this tests.
                stop.set()
                written = await writer
            assert written > 0
    assert "Traceback" not in server.log(), server.log()


def test_vacuum_refuses_while_a_server_holds_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, token=TOKEN) as server:
        assert server.proc is not None
        in_flight = DiskBlobStore(data_dir / "blobs", data_dir / "tmp", fsync=False).stage()
        result = run_relserver("vacuum", "--data-dir", str(data_dir))
        assert one_line(result) == (
            f"{in_use(data_dir, server.proc.pid)}; stop it first: vacuum removes temp files, "
            "which may be uploads in flight"
        )
        assert in_flight.path.exists()
        in_flight.discard()


def test_vacuum_runs_the_start_up_sweep_and_says_what_it_removed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, token=TOKEN):
        pass
    blobstore = DiskBlobStore(data_dir / "blobs", data_dir / "tmp", fsync=False)
    stale = blobstore.stage()
    stale.finish()
    loose = blob_path(data_dir / "blobs", sha1(b"no row"))
    # A blob row nobody references, with its file: what a delete interrupted mid-way leaves.
    unreferenced = blob_path(data_dir / "blobs", sha1(b"row, no file rows"))
    for path, data in ((loose, b"no row"), (unreferenced, b"row, no file rows")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    with contextlib.closing(sqlite3.connect(data_dir / "relserver.sqlite3")) as conn, conn:
        conn.execute(
            "INSERT INTO blobs (sha1, size, date_created) VALUES (?, ?, ?)",
            (unreferenced.name, 17, utcnow()),
        )

    result = run_relserver("vacuum", "--data-dir", str(data_dir))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"removed 1 stale temp file(s), 2 unreferenced blob file(s) and 1 unreferenced blob row(s) from {data_dir}\n"
    )
    assert not stale.path.exists() and not loose.exists() and not unreferenced.exists()
    again = run_relserver("vacuum", "--data-dir", str(data_dir))
    assert again.stdout.startswith("removed 0 stale temp file(s), 0 unreferenced blob file(s) and 0 ")


def test_check_says_ok_for_a_healthy_data_dir_and_names_every_broken_reference(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, token=TOKEN) as server:
        headers = {"Authorization": f"Bearer {TOKEN}"}

        async def upload() -> None:
            async with aiohttp.ClientSession(server.url, headers=headers) as session:
                body = {"version": "1.0", "projects": ["web"]}
                assert (await session.post("/api/0/organizations/acme/releases/", json=body)).status == 201
                form = aiohttp.FormData()
                form.add_field("file", b"kept bytes", filename="a.js")
                form.add_field("name", "~/a.js")
                assert (await session.post("/api/0/projects/acme/web/releases/1.0/files/", data=form)).status == 201

        asyncio.run(upload())
        # Read-only, so it runs beside the server.
        healthy = run_relserver("check", "--data-dir", str(data_dir))
    assert (healthy.returncode, healthy.stderr) == (0, "")
    assert healthy.stdout.splitlines() == [
        f"schema {len(MIGRATIONS)}, 1 release files, 0 bundle members, 1 blobs"
        " (0 unreferenced in the blob store, removed by the next sweep)",
        "ok",
    ]
    # The bytes of a file lost (a disk restored from an old backup), and a row whose blob row went.
    blob_path(data_dir / "blobs", sha1(b"kept bytes")).unlink()
    with contextlib.closing(sqlite3.connect(data_dir / "relserver.sqlite3")) as conn, conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("UPDATE release_files SET blob_sha1 = ?", (sha1(b"gone"),))
    broken = run_relserver("check", "--data-dir", str(data_dir))
    assert broken.returncode == 1
    assert broken.stdout.splitlines()[1:] == [
        f"problem: a row references blob {sha1(b'gone')}, which has no blob row",
        f"problem: blob {sha1(b'kept bytes')} has a row but no bytes",
        "2 problem(s)",
    ]


def test_vacuum_holds_the_lock_while_it_sweeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert cli.main(["token", "create", "--data-dir", str(data_dir)], {}) == 0
    seen: list[int | None] = []
    real_sweep = services.sweep_leftovers

    async def sweep_and_look(*args: object, **kwargs: object) -> object:
        with pytest.raises(DataDirInUse) as refused:
            DataDirLock(data_dir).acquire()
        seen.append(refused.value.pid)
        return await real_sweep(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services, "sweep_leftovers", sweep_and_look)
    assert cli.main(["vacuum", "--data-dir", str(data_dir)], {}) == 0
    assert seen == [os.getpid()]
    with DataDirLock(data_dir):  # and let go afterwards
        pass


# --- what the sweep may delete ----------------------------------------------------------------


def test_the_sweep_never_deletes_a_file_relserver_did_not_create(tmp_path: Path) -> None:
    """`--data-dir .` in a project that has its own tmp/: the start-up sweep and vacuum used to
    empty it."""
    project = tmp_path / "project"
    digest = sha1(b"someone else's")
    theirs = [
        project / "tmp" / "build.log",
        project / "tmp" / "upload-x1y2z3.part",
        project / "tmp" / "relserver-notes.txt",
        project / "tmp" / "cache" / "relserver-abc.part",
        project / "blobs" / "index.html",
        project / "blobs" / "00" / "00" / digest,
    ]
    for path in theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"someone else's")
    ours = DiskBlobStore(project / "blobs", project / "tmp", fsync=False).stage()
    ours.finish()

    with running_server(Path("."), token=TOKEN, cwd=project) as server:
        server.wait_for_log("start-up sweep removed 1 temp file(s) and 0 unreferenced blob(s)")
    assert not ours.path.exists()
    vacuum = run_relserver("vacuum", "--data-dir", ".", cwd=project)
    assert vacuum.stdout.startswith("removed 0 stale temp file(s), 0 unreferenced blob file(s)"), vacuum
    assert [p for p in theirs if p.read_bytes() != b"someone else's"] == []


# --- data dirs that cannot be written ------------------------------------------------------------


@pytest.fixture
def read_only_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir with a database, seen through a read-only bind mount. We run as root, which
    chmod does not stop; a read-only mount stops everyone. Needs mount rights: skipped where
    they are missing, except on CI, where that is a failure."""
    source, view = tmp_path / "data", tmp_path / "read-only"
    assert cli.main(["token", "create", "--data-dir", str(source)], {}) == 0
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True, text=True)
    if mounted.returncode == 0:
        mounted = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(view)], capture_output=True, text=True, check=False
        )
        if mounted.returncode:
            subprocess.run(["umount", str(view)], check=False)
    if mounted.returncode:
        missing_system_part(f"a read-only bind mount: {mounted.stderr.strip()}")
    try:
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--port", "0"],
        ["token", "list"],
        ["token", "create"],
        ["token", "revoke", "1"],
        ["project", "create", "acme", "web"],
        ["vacuum"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_read_only_data_dir_is_one_line_for_serve_and_every_command(
    read_only_data_dir: Path, command: list[str]
) -> None:
    result = run_relserver(*command, "--data-dir", str(read_only_data_dir))
    assert one_line(result) == f"cannot write {read_only_data_dir}: read-only file system"
    assert result.returncode == 1


def test_the_read_only_error_lines_cover_sqlite_and_os_errors(tmp_path: Path) -> None:
    """The same words whichever layer notices first (a mkdir, an open, or SQLite)."""
    writable = tmp_path
    readonly_db = sqlite3.OperationalError("attempt to write a readonly database")
    assert describe_error(writable, readonly_db) == f"cannot write {writable}: read-only database"
    assert describe_error(writable, OSError(30, "Read-only file system")) == (
        f"cannot write {writable}: read-only file system"
    )
    assert describe_error(writable, PermissionError(13, "Permission denied")) == (
        f"cannot write {writable}: permission denied"
    )
    assert describe_error(writable, ValueError("not ours")) is None
