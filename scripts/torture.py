"""Long reliability runs against a real relserver process (`make torture`; not in `make test`).

    .venv/bin/python scripts/torture.py crash [--kills 200] [--clients 16]
    .venv/bin/python scripts/torture.py soak  [--minutes 10] [--clients 100]

crash: clients upload (single files, and bundles through chunk upload + assembly) while the
server is killed with SIGKILL at random moments and restarted, again and again. After every
restart it checks: every upload whose 201 a client saw is there with identical bytes; no row
points at a missing blob; no temp file and no unreferenced blob survived the start-up sweep;
`PRAGMA integrity_check` is ok; an assembly caught mid-way ends `ok` or `error` on the next
polls, never stuck.

soak: clients mix uploads, lists, downloads and deletes for a while; it reports throughput,
every 5xx (there should be none), and the server's file descriptors and RSS over time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import re
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

PYTHON = sys.executable
TOKEN = "torture-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROJECT_FILES = "/api/0/projects/acme/web/releases/1.0/files/"
ASSEMBLE = "/api/0/organizations/acme/artifactbundle/assemble/"


def start(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "relserver",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--token",
            TOKEN,
            "--log-level",
            "warning",
            "--chunk-size",
            "4KiB",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if match := re.search(r"listening on (http://\S+)", line):
            return proc, match.group(1)
    raise RuntimeError("relserver did not start")


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def bundle(seed: int) -> bytes:
    buffer = io.BytesIO()
    files = {f"~/b{seed}/{i}.js": os.urandom(3000) for i in range(3)}
    with zipfile.ZipFile(buffer, "w") as archive:
        for url, data in files.items():
            archive.writestr("files/_/_/" + url[2:], data)
        manifest = {"files": {"files/_/_/" + u[2:]: {"url": u, "type": "minified_source"} for u in files}}
        archive.writestr("manifest.json", json.dumps(manifest))
    return b"SYSB" + struct.pack("<I", 2) + buffer.getvalue()


@dataclass
class Ledger:
    """What clients were told was stored."""

    acked: dict[str, str] = field(default_factory=dict)  # name -> sha1
    bundles: dict[str, list[str]] = field(default_factory=dict)  # checksum -> chunks
    statuses: Counter[int] = field(default_factory=Counter)


async def client_loop(url: str, ledger: Ledger, worker: int, stop: asyncio.Event) -> None:
    n = 0
    try:
        async with aiohttp.ClientSession(url, headers=AUTH, timeout=aiohttp.ClientTimeout(total=10)) as session:
            while not stop.is_set():
                n += 1
                if n % 5 == 0:
                    data = bundle(worker * 100000 + n)
                    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
                    chunk_ids = [sha1(c) for c in chunks]
                    body = {"checksum": sha1(data), "chunks": chunk_ids, "projects": ["web"], "version": "1.0"}
                    await session.post(ASSEMBLE, json=body)
                    form = aiohttp.FormData()
                    for c in chunks:
                        form.add_field("file", c, filename=sha1(c))
                    resp = await session.post("/api/0/organizations/acme/chunk-upload/", data=form)
                    ledger.statuses[resp.status] += 1
                    resp = await session.post(ASSEMBLE, json=body)
                    ledger.statuses[resp.status] += 1
                    if resp.status == 200:
                        ledger.bundles[sha1(data)] = chunk_ids
                    continue
                data = os.urandom(random.randint(1, 200_000))
                name = f"~/w{worker}/{time.monotonic_ns()}.js"
                form = aiohttp.FormData()
                form.add_field("file", data, filename="f.js")
                form.add_field("name", name)
                resp = await session.post(PROJECT_FILES, data=form)
                ledger.statuses[resp.status] += 1
                if resp.status == 201:
                    ledger.acked[name] = sha1(data)
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        pass  # the server was killed under us


def check_store(data_dir: Path, ledger: Ledger, verified: set[str]) -> list[str]:
    """Everything acknowledged is there; bytes are re-read for new uploads and a sample of old ones."""
    problems = []
    with contextlib.closing(sqlite3.connect(data_dir / "relserver.sqlite3")) as db:
        if (ok := db.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
            problems.append(f"integrity_check: {ok}")
        rows = dict(db.execute("SELECT name, blob_sha1 FROM release_files").fetchall())
        referenced = {
            r[0]
            for r in db.execute(
                "SELECT blob_sha1 FROM release_files UNION SELECT blob_sha1 FROM artifact_bundle_files"
                " UNION SELECT sha1 FROM chunk_owners UNION SELECT checksum FROM artifact_bundles"
            )
        }
    for name, digest in ledger.acked.items():
        if rows.get(name) != digest:
            problems.append(f"acknowledged {name} is {rows.get(name)!r}, not {digest}")
    on_disk = {p.name: p for p in (data_dir / "blobs").glob("*/*/*")}
    acked = set(ledger.acked.values())
    sample = set(random.sample(sorted(verified), min(50, len(verified))))
    for digest in referenced:
        path = on_disk.get(digest)
        if path is None:
            problems.append(f"row points at missing blob {digest}")
        elif digest in acked and (digest not in verified or digest in sample):
            if sha1(path.read_bytes()) != digest:
                problems.append(f"blob {digest} has other bytes")
            verified.add(digest)
    if unreferenced := set(on_disk) - referenced:
        problems.append(f"{len(unreferenced)} unreferenced blobs after the sweep")
    if leftovers := list((data_dir / "tmp").iterdir()):
        problems.append(f"{len(leftovers)} temp files after the sweep")
    return problems


async def check_assemblies(url: str, ledger: Ledger) -> list[str]:
    problems = []
    async with aiohttp.ClientSession(url, headers=AUTH) as session:
        for checksum, chunks in list(ledger.bundles.items())[-5:]:
            body = {"checksum": checksum, "chunks": chunks, "projects": ["web"], "version": "1.0"}
            for _ in range(100):
                state = (await (await session.post(ASSEMBLE, json=body)).json())["state"]
                if state in ("ok", "error", "not_found"):
                    break
                await asyncio.sleep(0.1)
            else:
                problems.append(f"assembly {checksum} stuck in {state}")
    return problems


async def wait_for_resumed_assemblies(data_dir: Path, seconds: float = 60) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(data_dir / "relserver.sqlite3")) as db:
            pending = db.execute(
                "SELECT count(*) FROM assemble_tasks WHERE state IN ('created', 'assembling')"
            ).fetchone()[0]
        if not pending:
            return []
        await asyncio.sleep(0.1)
    return [f"{pending} assemblies still pending {seconds}s after a restart"]


async def crash(kills: int, clients: int) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="relserver-torture-"))
    ledger = Ledger()
    verified: set[str] = set()
    failures: list[str] = []
    started = time.monotonic()
    for round_no in range(1, kills + 1):
        proc, url = start(data_dir)
        if round_no == 1:
            async with aiohttp.ClientSession(url, headers=AUTH) as s:
                await s.post("/api/0/projects/acme/web/releases/", json={"version": "1.0"})
        else:
            # Assemblies the killed process had accepted resume first; the store is checked
            # once they are done (they create temp files and blobs of their own meanwhile).
            problems = await wait_for_resumed_assemblies(data_dir)
            problems += check_store(data_dir, ledger, verified) + await check_assemblies(url, ledger)
            if problems:
                failures += [f"after kill {round_no - 1}: {p}" for p in problems]
                print(f"after kill {round_no - 1}: {len(problems)} problems, e.g. {problems[0]}", file=sys.stderr)
        stop = asyncio.Event()
        tasks = [asyncio.ensure_future(client_loop(url, ledger, w, stop)) for w in range(clients)]
        await asyncio.sleep(random.uniform(0.2, 1.5))
        proc.kill()
        proc.wait()
        stop.set()
        await asyncio.gather(*tasks)
        if proc.stdout:
            proc.stdout.close()
        if round_no % 20 == 0:
            print(
                f"{round_no} kills, {len(ledger.acked)} acknowledged uploads, {len(failures)} problems", file=sys.stderr
            )
    proc, url = start(data_dir)
    failures += await wait_for_resumed_assemblies(data_dir)
    failures += check_store(data_dir, ledger, verified) + await check_assemblies(url, ledger)
    proc.terminate()
    proc.wait()
    report = {
        "kills": kills,
        "clients": clients,
        "seconds": round(time.monotonic() - started),
        "acknowledged_uploads": len(ledger.acked),
        "bundles_assembled_or_queued": len(ledger.bundles),
        "statuses": dict(ledger.statuses),
        "problems": failures,
    }
    print(json.dumps(report, indent=2))
    return 1 if failures else 0


async def soak(minutes: float, clients: int) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="relserver-soak-"))
    proc, url = start(data_dir)
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    samples: list[tuple[float, int, int]] = []
    deadline = time.monotonic() + minutes * 60
    async with aiohttp.ClientSession(url, headers=AUTH) as s:
        await s.post("/api/0/projects/acme/web/releases/", json={"version": "1.0"})

    async def worker(n: int) -> None:
        async with aiohttp.ClientSession(url, headers=AUTH, timeout=aiohttp.ClientTimeout(total=60)) as session:
            mine: list[str] = []
            while time.monotonic() < deadline:
                roll = random.random()
                try:
                    if roll < 0.4 or not mine:
                        form = aiohttp.FormData()
                        form.add_field("file", os.urandom(random.randint(100, 20_000)), filename="s.js")
                        form.add_field("name", f"~/s{n}/{time.monotonic_ns()}.js")
                        resp = await session.post(PROJECT_FILES, data=form)
                        if resp.status == 201:
                            mine.append((await resp.json())["id"])
                    elif roll < 0.6:
                        resp = await session.get(f"{PROJECT_FILES}?query=s{n}/")
                    elif roll < 0.85:
                        resp = await session.get(f"{PROJECT_FILES}{random.choice(mine)}/?download")
                    else:
                        resp = await session.delete(f"{PROJECT_FILES}{mine.pop()}/")
                    body = await resp.read()
                    statuses[resp.status] += 1
                    if resp.status >= 500 or b"database is locked" in body:
                        errors[f"{resp.status} {body[:100]!r}"] += 1
                except (TimeoutError, aiohttp.ClientError) as exc:
                    errors[type(exc).__name__] += 1

    async def sampler() -> None:
        start_time = time.monotonic()
        while time.monotonic() < deadline:
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            rss = int(
                next(
                    line.split()[1]
                    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS")
                )
            )
            samples.append((round(time.monotonic() - start_time), fds, rss // 1024))
            await asyncio.sleep(10)

    started = time.monotonic()
    await asyncio.gather(sampler(), *(worker(n) for n in range(clients)))
    elapsed = time.monotonic() - started
    proc.terminate()
    code = proc.wait(30)
    after_first_minute = [s for s in samples if s[0] >= 60] or samples
    report = {
        "minutes": minutes,
        "clients": clients,
        "requests_per_second": round(sum(statuses.values()) / elapsed, 1),
        "statuses": dict(statuses),
        "errors": dict(errors),
        "samples_seconds_fds_rss_mib": samples,
        "fd_range_after_first_minute": [min(s[1] for s in after_first_minute), max(s[1] for s in after_first_minute)],
        "rss_mib_range_after_first_minute": [
            min(s[2] for s in after_first_minute),
            max(s[2] for s in after_first_minute),
        ],
        "exit_code": code,
    }
    print(json.dumps(report, indent=2))
    return 1 if errors or code else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    crash_cmd = commands.add_parser("crash")
    crash_cmd.add_argument("--kills", type=int, default=200)
    crash_cmd.add_argument("--clients", type=int, default=16)
    soak_cmd = commands.add_parser("soak")
    soak_cmd.add_argument("--minutes", type=float, default=10)
    soak_cmd.add_argument("--clients", type=int, default=100)
    args = parser.parse_args()
    if args.command == "crash":
        return asyncio.run(crash(args.kills, args.clients))
    return asyncio.run(soak(args.minutes, args.clients))


if __name__ == "__main__":
    sys.exit(main())
