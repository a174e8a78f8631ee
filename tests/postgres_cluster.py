"""A throwaway PostgreSQL cluster for the suite: Debian's server binaries, started once per test
session on a short socket path and a free loopback port, one database per test copied from a
migrated template (about 0.1 s each).

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (which
Debian's package creates); the client side (asyncpg) stays in this process.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Debian's layout: /usr/lib/postgresql/<major>/bin; the newest major wins.
BINDIR_GLOB = "/usr/lib/postgresql/*/bin"
TEMPLATE = "relserver_template"


def find_bindir() -> Path | None:
    candidates = sorted(
        glob.glob(BINDIR_GLOB), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # Short: a Unix socket path may not exceed 107 bytes, and pytest's tmp_path is long.
        self.root = Path(tempfile.mkdtemp(prefix="rspg", dir="/tmp"))
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count()

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run(
            "initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"
        )
        options = (
            f"-k {self.root} -c listen_addresses=127.0.0.1 -p {self.port}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "log"), "-w", "-s", "start", "-o", options)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-w", "-s", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database_name(self) -> str:
        return f"t{next(self._names)}"


@contextlib.contextmanager
def running_cluster(bindir: Path) -> Iterator[Cluster]:
    cluster = Cluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
