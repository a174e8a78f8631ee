"""relserver against same-run floors (scripts/baseline.py, scripts/floor.py), on this machine.

    .venv/bin/python scripts/bench.py [--quick] [--runs 3] [--only large,small,...] [--write docs/benchmarks.md]
                                      [--build-modules 2000] [--big-build [--big-modules 20000] [--big-runs 1]]

Measurements (targets in brackets, relserver / baseline or floor):
  large     one 1 GiB upload: MB/s of both, relserver's peak RSS over idle   [>= 0.9, <= 32 MiB growth]
  small     5 000 uploads of 1 KiB over 32 keep-alive connections; the load
            generator's own ceiling against a no-op handler is reported too  [>= 0.6]
  listing   a release of 50 000 files: first page, offset 19 900, a query    [p50 < 10 ms; deep <= 2x first]
  build     sentry-cli 3.8.2 `sourcemaps upload --wait` of 2 000 modules (a script and its map,
            4 000 files, ~60 MB), per run against a fresh floor and a fresh relserver: both walls,
            relserver's CPU seconds and peak RSS over idle, then the identical upload again to the
            same relserver; a separate upload under py-spy gives the top of its profile
                                                                             [wall <= 1.2x the floor's,
                                                                              CPU <= 1.0 s, RSS <= 64 MiB,
                                                                              repeat CPU < 0.05 s]
  build_N   the same with --big-modules N (20 000, ~600 MB), without the profile; only with --big-build
                                                                             [wall <= 1.2x the floor's,
                                                                              CPU per MB as in build]
  download  1 GiB download against aiohttp's FileResponse                    [>= 0.9]
  resolve   a 50-frame stack against a 15 MB map (minified file and map as release files): the
            first resolve (the SourceMapCache build) and cached ones, in server time (the
            endpoint's Server-Timing); then 8 such builds in turn with --resolve-cache-size
            64MiB and again with room for all: relserver's RSS over idle after each
                                                                             [first <= 1 s,
                                                                              cached <= 20 ms,
                                                                              RSS flat past the LRU]
  ui        every web UI page with a release of 50 000 files (and a small bundle): median
            latency on loopback, an upper bound on server time, and weight with the stylesheet
                                                                             [< 50 ms, < 100 KB]
  member    a 256 MiB script, deflated (about 3.3:1) in an artifact bundle uploaded by chunk
            upload and assemble as sentry-cli 3.x does, downloaded as a release file: MB/s of the
            inflated bytes against the same bytes stored as a plain release file, relserver's
            peak RSS over idle while the member streams                      [<= 32 MiB growth]

Scale-out (PostgreSQL + S3, 1 and 3 processes, against SQLite + disk in the same run; not in a
plain run, asked for by name: `--only scaleout_small,scaleout_build`, see scripts/bench_scaleout.py):
  scaleout_small  small uploads: uploads/s and server CPU per upload; PostgreSQL's and
                  SeaweedFS's CPU per upload            [PG+S3 CPU/upload <= 1.5x SQLite's;
                                                         3 processes >= 1.3x one, or what caps it]
  scaleout_build  the sentry-cli build at --build-modules: floor, SQLite, PG+S3 x1, x3 behind
                  the round-robin proxy                  [each <= 1.3x the floor's wall]
  Smoke run with tiny sizes: `--quick --runs 1 --only scaleout_small,scaleout_build`.

Each figure is the median of --runs runs; a ratio is the median of the runs' own ratios.
--quick shrinks every size for a smoke test. With --write, a run of some of the benchmarks
replaces only their sections of the file. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import statistics
import string
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MiB = 1024 * 1024
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SENTRY_CLI_3 = Path(PYTHON).parent.parent / "sentry-cli-3" / "bin" / "sentry-cli"


# --- processes ------------------------------------------------------------------------------


class Proc:
    """A server subprocess, its URL, and /proc readings."""

    def __init__(self, args: list[str], pattern: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
        )
        self.url = ""
        self.lines: list[str] = []
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if match := re.search(pattern + r" (http://\S+)", line):
                self.url = match.group(1)
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.lines))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return _status_field(self.pid, "VmRSS")

    def cpu_seconds(self) -> float:
        return sum(self.cpu_times())

    def cpu_times(self) -> tuple[float, float]:
        """User and system CPU seconds so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    return 0


PY_SPY = Path(PYTHON).parent / "py-spy"


@contextmanager
def py_spy(pid: int, output: Path) -> Iterator[None]:
    """A sampling profile of every thread of `pid` (hashing and unzipping run in worker threads)
    while the block runs; not the server's start-up or shutdown."""
    if not PY_SPY.exists():
        yield  # _top_frames says how to get one
        return
    args = [str(PY_SPY), "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--threads"]
    spy = subprocess.Popen([*args, "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # attached and sampling
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes the profile and exits
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


@contextmanager
def relserver(data_dir: Path, *extra: str) -> Iterator[Proc]:
    args = [
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
    ]
    proc = Proc([*args, *extra], "listening on")
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def baseline(directory: Path) -> Iterator[Proc]:
    proc = Proc([PYTHON, str(ROOT / "scripts" / "baseline.py"), "--dir", str(directory)], "baseline listening on")
    try:
        yield proc
    finally:
        proc.stop()


class PeakRss:
    """Samples a process's RSS every few milliseconds in a thread."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.peak = proc.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.rss())

    def __enter__(self) -> PeakRss:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- request helpers ------------------------------------------------------------------------

BOUNDARY = "benchboundary0123456789"


def multipart_head(filename: str, fields: dict[str, str]) -> bytes:
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    )
    return head + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\n'.encode()


TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
CONTENT_TYPE = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def streamed_body(head: bytes, size: int) -> AsyncIterator[bytes]:
    block = os.urandom(MiB)
    yield head
    sent = 0
    while sent < size:
        piece = block[: min(MiB, size - sent)]
        yield piece
        sent += len(piece)
    yield TAIL


async def create_release(url: str, version: str) -> None:
    async with aiohttp.ClientSession(url, headers=AUTH) as session:
        resp = await session.post("/api/0/projects/acme/web/releases/", json={"version": version})
        assert resp.status in (201, 208), await resp.text()


# --- 1. one large upload ------------------------------------------------------------------


async def timed_upload(url: str, path: str, head: bytes, size: int) -> tuple[float, dict[str, Any]]:
    async with aiohttp.ClientSession(url, headers=AUTH, timeout=aiohttp.ClientTimeout(total=None)) as session:
        started = time.perf_counter()
        resp = await session.post(path, data=streamed_body(head, size), headers=CONTENT_TYPE)
        body = await resp.json()
        elapsed = time.perf_counter() - started
        assert resp.status == 201, body
    return elapsed, body


def bench_large(work: Path, size: int, runs: int) -> dict[str, Any]:
    rel_times, base_times, growth = [], [], []
    with relserver(work / "rel", f"--max-file-size={2 * size}") as server, baseline(work / "base") as base:
        asyncio.run(create_release(server.url, "large"))
        for run in range(runs):
            idle = server.rss()
            head = multipart_head("big.bin", {"name": f"~/big{run}.bin"})
            with PeakRss(server) as peak:
                elapsed, body = asyncio.run(
                    timed_upload(server.url, "/api/0/projects/acme/web/releases/large/files/", head, size)
                )
            rel_times.append(elapsed)
            growth.append(peak.peak - idle)
            asyncio.run(_delete_file(server.url, "large", body["id"]))
            elapsed, _ = asyncio.run(timed_upload(base.url, "/upload", multipart_head("big.bin", {}), size))
            base_times.append(elapsed)
            for leftover in (work / "base").iterdir():
                leftover.unlink()
    rel = size / statistics.median(rel_times) / MiB
    base_rate = size / statistics.median(base_times) / MiB
    return {
        "relserver_mb_s": rel,
        "baseline_mb_s": base_rate,
        "ratio": rel / base_rate,
        "rss_growth_mib": statistics.median(growth) / MiB,
        "rss_growth_max_mib": max(growth) / MiB,
    }


async def _delete_file(url: str, version: str, file_id: str) -> None:
    async with aiohttp.ClientSession(url, headers=AUTH) as session:
        resp = await session.delete(f"/api/0/projects/acme/web/releases/{version}/files/{file_id}/")
        assert resp.status == 204


# --- 2. many small uploads (the load generator runs in its own process) -------------------


async def loadgen(url: str, kind: str, count: int, concurrency: int, size: int, prefix: str) -> dict[str, float]:
    """`url`: one server, or several separated by commas (the workers then take turns over
    them, as a load balancer's connections would)."""
    payload = os.urandom(size)
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    urls = url.split(",")
    sessions = [aiohttp.ClientSession(u, headers=AUTH, connector=aiohttp.TCPConnector(limit=concurrency)) for u in urls]
    cpu_before = time.process_time()
    try:

        async def worker(session: aiohttp.ClientSession) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                if kind == "noop":
                    path, body = "/noop", b""
                elif kind == "baseline":
                    path, body = "/upload", multipart_head("s.js", {}) + payload + TAIL
                else:
                    path = f"/api/0/projects/acme/web/releases/{prefix}/files/"
                    body = multipart_head("s.js", {"name": f"~/{prefix}/{i:06}.js"}) + payload + TAIL
                started = time.perf_counter()
                async with session.post(path, data=body, headers=CONTENT_TYPE) as resp:
                    await resp.read()
                    if resp.status not in (200, 201):
                        raise RuntimeError(f"{resp.status} from {path}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(sessions[k % len(sessions)]) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for session in sessions:
            await session.close()
    latencies.sort()
    return {
        "cpu_s": time.process_time() - cpu_before,
        "per_second": count / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def run_loadgen(url: str, kind: str, count: int, concurrency: int, size: int, prefix: str = "") -> dict[str, float]:
    out = subprocess.run(
        [PYTHON, __file__, "loadgen", url, kind, str(count), str(concurrency), str(size), prefix],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def bench_small(work: Path, count: int, runs: int) -> dict[str, Any]:
    rel, base, noop = [], [], []
    with relserver(work / "rel") as server, baseline(work / "base") as base_server:
        for run in range(runs):
            version = f"small{run}"
            asyncio.run(create_release(server.url, version))
            rel.append(run_loadgen(server.url, "relserver", count, 32, 1024, version))
            base.append(run_loadgen(base_server.url, "baseline", count, 32, 1024))
            noop.append(run_loadgen(base_server.url, "noop", count, 32, 0))

    def pick(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    return {
        "relserver_per_s": pick(rel, "per_second"),
        "relserver_p50_ms": pick(rel, "p50_ms"),
        "relserver_p99_ms": pick(rel, "p99_ms"),
        "baseline_per_s": pick(base, "per_second"),
        "baseline_p50_ms": pick(base, "p50_ms"),
        "baseline_p99_ms": pick(base, "p99_ms"),
        "loadgen_ceiling_per_s": pick(noop, "per_second"),
        "ratio": pick(rel, "per_second") / pick(base, "per_second"),
    }


# --- 3. listing at depth ------------------------------------------------------------------


async def page_latencies(url: str, path: str, n: int) -> float:
    async with aiohttp.ClientSession(url, headers=AUTH) as session:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            async with session.get(path) as resp:
                await resp.read()
                assert resp.status == 200
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def bench_listing(work: Path, files: int, runs: int) -> dict[str, Any]:
    with relserver(work / "rel", "--no-fsync") as server:
        asyncio.run(create_release(server.url, "deep"))
        run_loadgen(server.url, "relserver", files, 32, 64, "deep")
        base = "/api/0/projects/acme/web/releases/deep/files/"
        deep_page = min(199, (files - 100) // 100)
        results: dict[str, list[float]] = {"first_ms": [], "deep_ms": [], "query_ms": []}
        for _ in range(runs):
            results["first_ms"].append(asyncio.run(page_latencies(server.url, base, 50)))
            results["deep_ms"].append(asyncio.run(page_latencies(server.url, f"{base}?cursor=100:{deep_page}:0", 50)))
            results["query_ms"].append(asyncio.run(page_latencies(server.url, f"{base}?query=0123", 50)))
    out: dict[str, Any] = {k: statistics.median(v) for k, v in results.items()}
    out["deep_offset"] = deep_page * 100
    out["deep_over_first"] = out["deep_ms"] / out["first_ms"]
    return out


# --- 4. a real build with sentry-cli, against the floor (scripts/floor.py) ------------------

# One module of a build: a minified script and its source map, about 30 KB together.
MODULE_BYTES = 60 * MiB // 2000


def make_build(root: Path, modules: int) -> None:
    """`modules` scripts, each with its map: 2 files and about MODULE_BYTES per module."""
    root.mkdir(parents=True)
    for i in range(modules):
        noise = secrets.token_hex(MODULE_BYTES // 3)  # 2/3 of the module in the map, 1/3 in the script
        (root / f"chunk{i}.js").write_text(
            f'var c{i}="{noise[: MODULE_BYTES // 3]}";\n//# sourceMappingURL=chunk{i}.js.map\n'
        )
        mapping = {"version": 3, "sources": [f"src/{i}.ts"], "names": [], "mappings": "AAAA", "sourcesContent": [noise]}
        (root / f"chunk{i}.js.map").write_text(json.dumps(mapping))


@contextmanager
def floor() -> Iterator[Proc]:
    proc = Proc([PYTHON, str(ROOT / "scripts" / "floor.py")], "floor listening on")
    try:
        yield proc
    finally:
        proc.stop()


def sentry_cli_upload(url: str, dist: Path, home: Path) -> tuple[float, float]:
    """sentry-cli 3.x `sourcemaps upload --wait` of `dist`: its wall time and its own CPU seconds."""
    env = {**os.environ, "SENTRY_URL": url, "SENTRY_AUTH_TOKEN": TOKEN, "SENTRY_ORG": "acme", "HOME": str(home)}
    args = [str(SENTRY_CLI_3), "sourcemaps", "upload", str(dist), "--release", "build", "-p", "web", "--wait"]
    # Writeback of earlier runs' files (the build itself, removed data dirs) must not land on
    # this run's fsyncs.
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        raise UploadFailed(errors[0] if errors else f"sentry-cli exited {result.returncode}:\n{result.stderr}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


class UploadFailed(RuntimeError):
    pass


def bench_build(work: Path, modules: int, runs: int, *, profile: bool = True) -> dict[str, Any]:
    """Per run, the same build against a fresh floor, then a fresh relserver, then that relserver again."""
    dist = work / "dist"
    make_build(dist, modules)
    files = sum(1 for _ in dist.iterdir())
    mb = sum(p.stat().st_size for p in dist.iterdir()) / MiB
    rows: dict[str, list[float]] = {
        k: [] for k in ("floor_wall", "floor_cpu", "cli_cpu", "wall", "cpu", "sys", "rss", "repeat_wall", "repeat_cpu")
    }
    failed = ""
    for run in range(runs):
        with floor() as server:
            cpu_before = server.cpu_seconds()
            wall, cli_cpu = sentry_cli_upload(server.url, dist, work)
            rows["floor_wall"].append(wall)
            rows["floor_cpu"].append(server.cpu_seconds() - cpu_before)
            rows["cli_cpu"].append(cli_cpu)
        data = work / f"rel{run}"
        with relserver(data) as server:
            idle = server.rss()
            user_before, sys_before = server.cpu_times()
            try:
                with PeakRss(server) as peak:
                    wall, _ = sentry_cli_upload(server.url, dist, work)
            except UploadFailed as error:
                # Reported beside the floor's figures rather than losing them.
                failed = f"{error} (after {time.perf_counter() - peak.started:.1f} s)"
            else:
                user, system = server.cpu_times()
                rows["wall"].append(wall)
                rows["cpu"].append(user - user_before + system - sys_before)
                rows["sys"].append(system - sys_before)
                rows["rss"].append(peak.peak - idle)
                # The identical upload again: everything is already there.
                cpu_before = server.cpu_seconds()
                wall, _ = sentry_cli_upload(server.url, dist, work)
                rows["repeat_wall"].append(wall)
                rows["repeat_cpu"].append(server.cpu_seconds() - cpu_before)
        print(
            f"   run {run}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rows.items() if v), file=sys.stderr, flush=True
        )
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    out: dict[str, Any] = {"modules": modules, "files": files, "mb": mb, "floor_wall_s": med["floor_wall"]}
    if failed:
        out["relserver_error"] = failed
    else:
        out |= {
            "relserver_wall_s": med["wall"],
            "ratio": statistics.median(r / f for r, f in zip(rows["wall"], rows["floor_wall"], strict=True)),
            "relserver_cpu_s": med["cpu"],
            "relserver_sys_s": med["sys"],
            "relserver_cpu_ms_per_mb": 1000 * med["cpu"] / mb,
            "rss_growth_mib": med["rss"] / MiB,
            "rss_growth_max_mib": max(rows["rss"]) / MiB,
            "repeat_wall_s": med["repeat_wall"],
            "repeat_cpu_s": med["repeat_cpu"],
        }
    out |= {"floor_cpu_s": med["floor_cpu"], "sentry_cli_cpu_s": med["cli_cpu"]}
    if profile and not failed:
        # A separate upload to a fresh relserver under py-spy, which pauses the process for
        # each sample: its wall and CPU are not the figures above.
        trace = work / "relserver.profile.txt"
        with relserver(work / "rel-profile") as server, py_spy(server.pid, trace):
            sentry_cli_upload(server.url, dist, work)
        out["profile_top_self"] = _top_frames(trace, leaf=True)
        out["profile_top_relserver"] = _top_frames(trace, leaf=False)
    # Data dirs go only now: ext4 passes over inodes freed in the last minute when it
    # allocates one, so removing a run's thousands of files just before the next run would
    # add to that run's file creation.
    for path in [dist, *work.glob("rel*")]:
        if path.is_dir():
            shutil.rmtree(path)
    return out


def _top_frames(profile: Path, *, leaf: bool, count: int = 8) -> list[str]:
    """From py-spy's collapsed stacks: the busiest leaf frames, or relserver's own frames (inclusive)."""
    if not profile.exists():
        return ["(no profile: install py-spy, `make bench` does)"]
    totals: Counter[str] = Counter()
    samples = 0
    for line in profile.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")[1:]  # the first entry names the thread
        weight = int(number)
        samples += weight
        if leaf and frames:
            totals[frames[-1]] += weight
        elif not leaf:
            for frame in set(frames):
                if "relserver/" in frame and "__main__" not in frame and "cli.py" not in frame:
                    totals[frame] += weight
    return [f"{frame}: {100 * n / max(samples, 1):.1f}% of busy samples" for frame, n in totals.most_common(count)]


# --- 5. one large download ----------------------------------------------------------------


async def timed_download(url: str, path: str, headers: dict[str, str]) -> float:
    async with aiohttp.ClientSession(url, headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as session:
        started = time.perf_counter()
        async with session.get(path) as resp:
            assert resp.status == 200
            async for _ in resp.content.iter_chunked(4 * MiB):
                pass
        return time.perf_counter() - started


def bench_download(work: Path, size: int, runs: int) -> dict[str, Any]:
    with (
        relserver(work / "rel", f"--max-file-size={2 * size}", "--no-fsync") as server,
        baseline(work / "base") as base,
    ):
        asyncio.run(create_release(server.url, "dl"))
        _, body = asyncio.run(
            timed_upload(server.url, "/api/0/projects/acme/web/releases/dl/files/", multipart_head("big", {}), size)
        )
        blob = work / "rel" / "blobs" / body["sha1"][:2] / body["sha1"][2:4] / body["sha1"]
        shutil.copy(blob, work / "base" / "big.bin")
        rel_times, base_times = [], []
        for _ in range(runs):
            path = f"/api/0/projects/acme/web/releases/dl/files/{body['id']}/?download"
            rel_times.append(asyncio.run(timed_download(server.url, path, AUTH)))
            base_times.append(asyncio.run(timed_download(base.url, "/download/big.bin", {})))
    rel = size / statistics.median(rel_times) / MiB
    base_rate = size / statistics.median(base_times) / MiB
    return {"relserver_mb_s": rel, "baseline_mb_s": base_rate, "ratio": rel / base_rate}


# --- 6. a deflated bundle member ----------------------------------------------------------

MEMBER_URL = "~/big.js"
PLAIN_URL = "~/plain.js"
ORG_API = "/api/0/organizations/acme"


def make_script(path: Path, size: int) -> str:
    """`size` bytes of script-like lines, random words from a fixed seed (deflate: about 3.3:1); their sha1."""
    rng = random.Random(1234)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10))) for _ in range(512)]
    digest = hashlib.sha1()
    written = 0
    with path.open("wb") as out:
        while written < size:
            block = "".join(
                f'var {"_".join(rng.choices(words, k=2))} = "{" ".join(rng.choices(words, k=12))}";\n'
                for _ in range(10_000)
            ).encode()[: size - written]
            out.write(block)
            digest.update(block)
            written += len(block)
    return digest.hexdigest()


def make_bundle(path: Path, script: Path, version: str) -> None:
    """`SYSB` + u32le(2) + a zip of the script (deflated) and manifest.json, as sentry-cli writes one."""
    manifest = {
        "org": "acme",
        "release": version,
        "files": {"files/_/_/big.js": {"url": MEMBER_URL, "type": "minified_source"}},
    }
    archive_path = path.with_name(path.name + ".zip")
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        with script.open("rb") as src, archive.open("files/_/_/big.js", "w", force_zip64=True) as dst:
            shutil.copyfileobj(src, dst, MiB)
        archive.writestr("manifest.json", json.dumps(manifest))
    with path.open("wb") as out, archive_path.open("rb") as src:
        out.write(b"SYSB" + struct.pack("<I", 2))
        shutil.copyfileobj(src, out, MiB)
    archive_path.unlink()


def read_chunks(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as src:
        while chunk := src.read(size):
            yield chunk


async def upload_bundle(url: str, bundle: Path, version: str) -> None:
    """What sentry-cli 3.x does: read the chunk-upload options, ask assemble which chunks are
    missing, send those in requests within the advertised limits, then poll assemble until ok."""
    async with aiohttp.ClientSession(url, headers=AUTH, timeout=aiohttp.ClientTimeout(total=None)) as session:
        async with session.get(f"{ORG_API}/chunk-upload/") as resp:
            assert resp.status == 200, await resp.text()
            options = await resp.json()
        chunk_size = options["chunkSize"]
        per_request = min(options["chunksPerRequest"], max(1, (options["maxRequestSize"] - MiB) // chunk_size))
        checksums = [hashlib.sha1(c).hexdigest() for c in read_chunks(bundle, chunk_size)]
        whole = hashlib.sha1()
        for chunk in read_chunks(bundle, chunk_size):
            whole.update(chunk)
        body = {"checksum": whole.hexdigest(), "chunks": checksums, "projects": ["web"], "version": version}
        async with session.post(f"{ORG_API}/artifactbundle/assemble/", json=body) as resp:
            assert resp.status == 200, await resp.text()
            missing = set((await resp.json())["missingChunks"])
        batch: list[tuple[str, bytes]] = []
        for i, (checksum, chunk) in enumerate(zip(checksums, read_chunks(bundle, chunk_size), strict=True)):
            if checksum in missing:
                batch.append((checksum, chunk))
            if batch and (len(batch) == per_request or i == len(checksums) - 1):
                form = aiohttp.FormData(quote_fields=False)
                for name, data in batch:
                    form.add_field("file", data, filename=name, content_type="application/octet-stream")
                async with session.post(f"{ORG_API}/chunk-upload/", data=form) as resp:
                    assert resp.status == 200, await resp.text()
                batch = []
        deadline = time.monotonic() + 600
        while True:
            async with session.post(f"{ORG_API}/artifactbundle/assemble/", json=body) as resp:
                assert resp.status == 200, await resp.text()
                answer = await resp.json()
            if answer["state"] == "ok":
                return
            if answer["state"] in ("error", "not_found") or time.monotonic() > deadline:
                raise RuntimeError(f"assemble: {answer}")
            await asyncio.sleep(0.2)


async def file_body(head: bytes, path: Path) -> AsyncIterator[bytes]:
    yield head
    with path.open("rb") as src:
        while piece := src.read(MiB):
            yield piece
    yield TAIL


async def upload_plain(url: str, version: str, script: Path) -> dict[str, Any]:
    async with aiohttp.ClientSession(url, headers=AUTH, timeout=aiohttp.ClientTimeout(total=None)) as session:
        head = multipart_head("plain.js", {"name": PLAIN_URL})
        resp = await session.post(
            f"/api/0/projects/acme/web/releases/{version}/files/", data=file_body(head, script), headers=CONTENT_TYPE
        )
        body: dict[str, Any] = await resp.json()
        assert resp.status == 201, body
    return body


async def release_files(url: str, version: str) -> dict[str, dict[str, Any]]:
    async with aiohttp.ClientSession(url, headers=AUTH) as session:
        resp = await session.get(f"/api/0/projects/acme/web/releases/{version}/files/")
        assert resp.status == 200, await resp.text()
        return {f["name"]: f for f in await resp.json()}


async def downloaded_sha1(url: str, path: str) -> str:
    digest = hashlib.sha1()
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(url, headers=AUTH, timeout=timeout) as session, session.get(path) as resp:
        assert resp.status == 200
        async for piece in resp.content.iter_chunked(4 * MiB):
            digest.update(piece)
    return digest.hexdigest()


def bench_member(work: Path, size: int, runs: int) -> dict[str, Any]:
    work.mkdir(parents=True)
    script, bundle = work / "big.js", work / "bundle"
    sha1 = make_script(script, size)
    make_bundle(bundle, script, "member")
    deflated = bundle.stat().st_size
    with relserver(work / "rel", "--no-fsync") as server:
        asyncio.run(create_release(server.url, "member"))
        asyncio.run(upload_bundle(server.url, bundle, "member"))
        plain_id = asyncio.run(upload_plain(server.url, "member", script))["id"]
        files = asyncio.run(release_files(server.url, "member"))
        member = files[MEMBER_URL]
        assert (member["size"], member["sha1"]) == (size, sha1), member
        base = "/api/0/projects/acme/web/releases/member/files"
        member_path, plain_path = f"{base}/{member['id']}/?download=1", f"{base}/{plain_id}/?download=1"
        for path in (member_path, plain_path):
            assert asyncio.run(downloaded_sha1(server.url, path)) == sha1, path
        member_times, plain_times, growth = [], [], []
        for _ in range(runs):
            idle = server.rss()
            with PeakRss(server) as peak:
                member_times.append(asyncio.run(timed_download(server.url, member_path, AUTH)))
            growth.append(peak.peak - idle)
            plain_times.append(asyncio.run(timed_download(server.url, plain_path, AUTH)))
    member_rate = size / statistics.median(member_times) / MiB
    return {
        "member_mb": size / MiB,
        "deflated_mb": deflated / MiB,
        "member_mb_s": member_rate,
        "plain_mb_s": size / statistics.median(plain_times) / MiB,
        "ratio": statistics.median(p / m for m, p in zip(member_times, plain_times, strict=True)),
        "rss_growth_mib": statistics.median(growth) / MiB,
        "rss_growth_max_mib": max(growth) / MiB,
    }


# --- resolve: a 50-frame stack against a 15 MB map ---------------------------------------------

_VLQ = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _vlq(value: int) -> str:
    bits = (-value << 1) | 1 if value < 0 else value << 1
    out = ""
    while True:
        digit, bits = bits & 31, bits >> 5
        out += _VLQ[digit | (32 if bits else 0)]
        if not bits:
            return out


def make_resolve_build(work: Path, map_mb: int, seed: int = 0) -> tuple[bytes, bytes, list[tuple[int, int]]]:
    """A minified file and its map (about `map_mb` MB, sourcesContent included) in the shape a
    bundler writes: many modules of small commented functions, 400 per minified line. Returns
    both and the (line, column) of every `return` (1-based), where frames will point."""
    rng = random.Random(seed)
    sources, contents, names = [], [], []
    lines: list[str] = []
    mappings: list[str] = []
    positions: list[tuple[int, int]] = []
    state = [0, 0, 0, 0]  # source, original line, original column, name: deltas run across lines
    segments: list[tuple[int, str]] = []
    line, per_line = "", 0
    module = 0
    size = 0
    while size < map_mb * 1_000_000:
        name = f"module_{seed}_{module}.ts"
        body = []
        for i in range(40):
            fn = f"compute{module}x{i}"
            # Real sources carry comments and whitespace the minified file drops.
            body.append(
                f"/**\n * Scales {fn}'s input by the factor this module was configured with, then adds\n"
                f" * its index; callers rely on the result being finite for finite input ({i}).\n */\n"
                f"export function {fn}(value: number): number {{\n  return value * {rng.randint(2, 99)} + {i};\n}}\n"
            )
        source = "".join(body)
        sources.append(f"../src/{name}")
        contents.append(source)
        for i in range(40):
            fn = f"compute{module}x{i}"
            names.append(fn)
            minified_fn = f"function f{module}_{i}(v){{return v*2+{i}}}"
            col = len(line)
            src_line = i * 7 + 4
            at_return = col + minified_fn.index("return")
            positions.append((len(lines) + 1, at_return + 1))
            for gen_col, orig_line, orig_col, name_index in (
                (col, src_line, 0, None),
                (col + len("function "), src_line, len("export function "), len(names) - 1),
                (at_return, src_line + 1, 2, None),
            ):
                seg = _vlq(gen_col - (segments[-1][0] if segments else 0))
                seg += _vlq(len(sources) - 1 - state[0]) + _vlq(orig_line - state[1]) + _vlq(orig_col - state[2])
                state[0], state[1], state[2] = len(sources) - 1, orig_line, orig_col
                if name_index is not None:
                    seg += _vlq(name_index - state[3])
                    state[3] = name_index
                segments.append((gen_col, seg))
            line += minified_fn + ";"
            per_line += 1
            if per_line == 400:
                lines.append(line)
                mappings.append(",".join(seg for _, seg in segments))
                line, segments, per_line = "", [], 0
        # What this module adds to the map's JSON: its escaped source, names and segments.
        size += len(json.dumps(source)) + 40 * (len(names[-1]) + 3 + 3 * 8)
        module += 1
    if line:
        lines.append(line)
        mappings.append(",".join(seg for _, seg in segments))
    minified = ("\n".join(lines) + "\n//# sourceMappingURL=app.js.map\n").encode()
    sourcemap = json.dumps(
        {
            "version": 3,
            "file": "app.js",
            "sources": sources,
            "sourcesContent": contents,
            "names": names,
            "mappings": ";".join(mappings),
        }
    ).encode()
    return minified, sourcemap, positions


async def _upload_pair(url: str, version: str, prefix: str, minified: bytes, sourcemap: bytes) -> None:
    async with aiohttp.ClientSession(url, headers=AUTH) as session:
        resp = await session.post("/api/0/projects/acme/web/releases/", json={"version": version})
        assert resp.status in (201, 208), await resp.text()
        for name, data in (("app.js", minified), ("app.js.map", sourcemap)):
            form = aiohttp.FormData()
            form.add_field("file", data, filename=name)
            form.add_field("name", f"~/{prefix}/{name}")
            resp = await session.post(f"/api/0/projects/acme/web/releases/{version}/files/", data=form)
            assert resp.status == 201, await resp.text()


async def _timed_resolves(url: str, version: str, frames: list[dict[str, Any]], count: int) -> list[float]:
    """`count` resolves of the same frames over one keep-alive connection (the first builds
    the cache), each the server's own time (its Server-Timing header)."""
    times = []
    async with aiohttp.ClientSession(url, headers=AUTH) as session:
        for _ in range(count):
            started = time.perf_counter()
            resp = await session.post(
                "/api/0/projects/acme/web/relserver/resolve/", json={"release": version, "frames": frames}
            )
            body = await resp.json()
            wall = time.perf_counter() - started
            assert resp.status == 200, body
            server_ms = float(resp.headers["Server-Timing"].split("dur=", 1)[1])
            assert server_ms / 1000 <= wall
            times.append(server_ms / 1000)
            unresolved = [f for f in body["frames"] if not f["resolved"]]
            assert not unresolved, unresolved[0]
    return times


def _resolve_pass(
    work: Path, pairs: list[tuple[bytes, bytes, list[tuple[int, int]]]], runs: int, cache_mib: int
) -> tuple[list[float], list[float], list[int]]:
    """One server with this cache size: every build resolved in turn (the first resolve under
    the RSS sampler), the first `runs` builds then resolved again, cached."""
    rng = random.Random(1)
    firsts, cached, growth = [], [], []
    with relserver(work, "--no-fsync", "--resolve-cache-size", f"{cache_mib}MiB") as server:
        for seed, (minified, sourcemap, _) in enumerate(pairs):
            asyncio.run(_upload_pair(server.url, f"r{seed}", f"b{seed}", minified, sourcemap))
        idle = server.rss()
        for seed, (_, _, positions) in enumerate(pairs):
            chosen = rng.sample(positions, 50)
            frames = [
                {"abs_path": f"https://example.com/b{seed}/app.js", "lineno": ln, "colno": col} for ln, col in chosen
            ]
            with PeakRss(server) as peak:
                (first,) = asyncio.run(_timed_resolves(server.url, f"r{seed}", frames, 1))
            growth.append(peak.peak - idle)
            if seed < runs:
                # Without the RSS sampler, whose thread would compete with this client's loop.
                firsts.append(first)
                cached.extend(asyncio.run(_timed_resolves(server.url, f"r{seed}", frames, 1 + 5 * runs))[1:])
    return firsts, cached, growth


def bench_resolve(work: Path, map_mb: int, runs: int, builds: int, cache_mib: int) -> dict[str, Any]:
    work.mkdir(parents=True)
    pairs = [make_resolve_build(work, map_mb, seed) for seed in range(builds)]
    firsts, cached, growth = _resolve_pass(work / "small-cache", pairs, runs, cache_mib)
    # The same with room for every build: what keeping them all costs.
    _, _, growth_all = _resolve_pass(work / "room-for-all", pairs, 0, 16 * cache_mib)
    minified, sourcemap, _ = pairs[0]
    return {
        "map_mb": len(sourcemap) / 1_000_000,
        "minified_mb": len(minified) / 1_000_000,
        "frames": 50,
        "first_resolve_ms": statistics.median(firsts) * 1000,
        "cached_resolve_ms": statistics.median(cached) * 1000,
        "cached_resolve_max_ms": max(cached) * 1000,
        "builds_resolved": builds,
        "cache_size_mib": cache_mib,
        "rss_growth_per_build_mib": " ".join(f"{g / MiB:.0f}" for g in growth),
        "rss_growth_max_mib": max(growth) / MiB,
        "room_for_all_cache_mib": 16 * cache_mib,
        "room_for_all_rss_growth_per_build_mib": " ".join(f"{g / MiB:.0f}" for g in growth_all),
    }


# --- 8. the web UI's pages over a release of 50 000 files ---------------------------------

UI_PAGE_BUDGET_MS = 50
UI_WEIGHT_BUDGET_KB = 100
UI_DEBUG_ID = "0c5a8e0e-5b83-4bd6-9d4b-0e8c3a1f2d77"


def make_ui_bundle(path: Path, version: str) -> None:
    """A small artifact bundle of a script and its map sharing a debug id, as `sourcemaps inject` makes them."""
    manifest = {
        "org": "acme",
        "release": version,
        "files": {
            "files/_/_/ui.min.js": {
                "url": "~/ui.min.js",
                "type": "minified_source",
                "headers": {"debug-id": UI_DEBUG_ID, "sourcemap": "ui.min.js.map"},
            },
            "files/_/_/ui.min.js.map": {
                "url": "~/ui.min.js.map",
                "type": "source_map",
                "headers": {"debug-id": UI_DEBUG_ID},
            },
        },
    }
    archive_path = path.with_name(path.name + ".zip")
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("files/_/_/ui.min.js", "function f(){}\n//# sourceMappingURL=ui.min.js.map\n")
        archive.writestr("files/_/_/ui.min.js.map", '{"version":3,"sources":[],"names":[],"mappings":""}')
        archive.writestr("manifest.json", json.dumps(manifest))
    path.write_bytes(b"SYSB" + struct.pack("<I", 2) + archive_path.read_bytes())
    archive_path.unlink()


async def ui_pages(url: str, pages: dict[str, str], n: int) -> dict[str, tuple[float, int]]:
    """Median latency (ms) and body bytes of each page, signed in as a browser would be."""
    jar = aiohttp.CookieJar(unsafe=True)  # the server is on an IP address
    async with aiohttp.ClientSession(url, cookie_jar=jar) as session:
        async with session.post("/ui/login/", data={"token": TOKEN}, headers={"Sec-Fetch-Site": "same-origin"}) as resp:
            assert resp.status == 200 and resp.url.path == "/ui/", resp.url
        found: dict[str, tuple[float, int]] = {}
        for name, path in pages.items():
            times, size = [], 0
            for _ in range(n):
                started = time.perf_counter()
                async with session.get(path, allow_redirects=False) as resp:
                    body = await resp.read()
                    assert resp.status == 200, (path, resp.status, body[:200])
                times.append(time.perf_counter() - started)
                size = len(body)
            found[name] = (statistics.median(times) * 1000, size)
    return found


def bench_ui(work: Path, files: int, runs: int) -> dict[str, Any]:
    """Every page of the UI with a release of `files` files: latency as a browser on loopback
    sees it (an upper bound on server time), and weight with the stylesheet."""
    with relserver(work / "rel", "--no-fsync") as server:
        asyncio.run(create_release(server.url, "deep"))
        run_loadgen(server.url, "relserver", files, 32, 64, "deep")
        bundle = work / "ui.bundle"
        make_ui_bundle(bundle, "deep")
        asyncio.run(upload_bundle(server.url, bundle, "deep"))
        files_api = asyncio.run(release_files(server.url, "deep"))
        first_id = next(iter(files_api.values()))["id"]
        base = "/ui/acme/web"
        rel = f"{base}/releases/deep"
        deep_page = min(199, (files - 100) // 100)
        bundle_id = asyncio.run(_ui_bundle_id(server.url))
        member = base64_path("files/_/_/ui.min.js")
        pages = {
            "login": "/ui/login/",
            "overview": "/ui/",
            "activity (full ring)": "/ui/activity/",
            "releases": f"{base}/releases/",
            "release, first page": f"{rel}/",
            f"release, offset {deep_page * 100}": f"{rel}/?cursor=100:{deep_page}:0",
            "release, name query": f"{rel}/?query=0123",
            "release file": f"{rel}/files/{first_id}/",
            "bundles": f"{base}/bundles/",
            "bundle": f"{base}/bundles/{bundle_id}/",
            "bundle file": f"{base}/bundles/{bundle_id}/files/{member}/",
            "tokens": "/ui/tokens/",
            "resolve": f"{base}/resolve/",
        }
        css = asyncio.run(_stylesheet_bytes(server.url))
        samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pages}
        for _ in range(runs):
            for name, figures in asyncio.run(ui_pages(server.url, pages, 20)).items():
                samples[name].append(figures)
        # The debug-id search answers a redirect to the file: timed on its own.
        search = asyncio.run(_timed_redirect(server.url, f"{base}/bundles/?query={UI_DEBUG_ID}", 20))
    out: dict[str, Any] = {"files_in_release": files, "stylesheet_kb": css / 1024}
    for name, values in samples.items():
        out[f"{name} ms"] = statistics.median(v[0] for v in values)
        out[f"{name} kb"] = (values[0][1] + css) / 1024
    out["debug-id search (303) ms"] = search
    worst_ms = max(v for k, v in out.items() if k.endswith(" ms"))
    worst_kb = max(v for k, v in out.items() if k.endswith(" kb"))
    out["slowest_ms"] = worst_ms
    out["heaviest_kb"] = worst_kb
    out["within_budget"] = "yes" if worst_ms < UI_PAGE_BUDGET_MS and worst_kb < UI_WEIGHT_BUDGET_KB else "no"
    return out


def base64_path(path: str) -> str:
    import base64

    return base64.urlsafe_b64encode(path.encode()).decode("ascii")


async def _ui_bundle_id(url: str) -> str:
    path = "/api/0/projects/acme/web/files/artifact-bundles/"
    async with aiohttp.ClientSession(url, headers=AUTH) as session, session.get(path) as resp:
        bundles = await resp.json()
    bundle_id: str = bundles[0]["bundleId"]
    return bundle_id


async def _stylesheet_bytes(url: str) -> int:
    async with aiohttp.ClientSession(url) as session:
        async with session.get("/ui/login/") as resp:
            (href,) = re.findall(r'href="(/ui/static/ui\.css\?v=[^"]+)"', await resp.text())
        async with session.get(href) as resp:
            assert "immutable" in resp.headers["Cache-Control"]
            return len(await resp.read())


async def _timed_redirect(url: str, path: str, n: int) -> float:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(url, cookie_jar=jar) as session:
        await session.post("/ui/login/", data={"token": TOKEN}, headers={"Sec-Fetch-Site": "same-origin"})
        times = []
        for _ in range(n):
            started = time.perf_counter()
            async with session.get(path, allow_redirects=False) as resp:
                await resp.read()
                assert resp.status == 303, resp.status
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


# --- report -------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    import aiohttp as aio

    return {
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "aiohttp": aio.__version__,
        "platform": platform.platform(),
    }


NOTES_HEADING = "## Reading the figures"
# What a plain run (and `make bench`) measures; the big build (section build_N) takes
# minutes and is asked for with --big-build.
BENCHMARKS = ("large", "small", "listing", "build", "download", "member", "resolve", "ui")
# Asked for by name only (they start a PostgreSQL cluster and a SeaweedFS): bench_scaleout.py.
SCALEOUT = ("scaleout_small", "scaleout_build")


def _scaleout() -> Any:
    import importlib

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    return importlib.import_module("bench_scaleout")


def render_section(name: str, values: dict[str, Any], note: str | None = None) -> list[str]:
    lines = [f"## {name}", ""]
    if note is not None:
        lines += [note, ""]
    lines += ["| measure | value |", "| --- | --- |"]
    for key, value in values.items():
        if isinstance(value, list):
            value = "<br>".join(str(v) for v in value)
        elif isinstance(value, float):
            value = f"{value:.2f}"
        lines.append(f"| {key} | {value} |")
    return [*lines, ""]


def render(results: dict[str, Any], command: str) -> str:
    lines = ["# Benchmarks", "", f"Produced by `{command}`; every figure is a median of the runs.", ""]
    lines += ["| machine | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in machine().items()] + [""]
    for name, values in results.items():
        lines += render_section(name, values)
    return "\n".join(lines)


def merge(old: str, results: dict[str, Any], command: str) -> str:
    """`old`'s tables with only the sections in `results` replaced, or added after their kin."""
    blocks = re.split(r"(?m)^(?=## )", old.split(NOTES_HEADING, 1)[0])
    preamble = blocks[0]
    listed = dict(re.findall(r"(?m)^\| (\w+) \| (.*) \|$", preamble))
    changed = [f"{k} {v}" for k, v in machine().items() if listed.get(k) != v]
    note = f"Re-run on its own: `{command}`" + (f", on {', '.join(changed)}." if changed else ".")
    sections = [(block.split("\n", 1)[0][3:].strip(), block) for block in blocks[1:]]
    for name, values in results.items():
        block = "\n".join(render_section(name, values, note)) + "\n"
        names = [n for n, _ in sections]
        if name in names:
            sections[names.index(name)] = (name, block)
        else:
            # build_20000 goes after build (and after any build_N already there).
            kin = [i for i, n in enumerate(names) if n.split("_")[0] == name.split("_")[0]]
            sections.insert(kin[-1] + 1 if kin else len(sections), (name, block))
    return preamble + "".join(block for _, block in sections)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        url, kind, count, concurrency, size, prefix = sys.argv[2:8]
        print(json.dumps(asyncio.run(loadgen(url, kind, int(count), int(concurrency), int(size), prefix))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"some of {','.join(BENCHMARKS)}, or the scale-out ones: {','.join(SCALEOUT)}",
    )
    parser.add_argument("--build-modules", type=int, default=2000, help="modules (a script and its map) in the build")
    parser.add_argument("--big-build", action="store_true", help="also the build at --big-modules, --big-runs times")
    parser.add_argument("--big-modules", type=int, default=20_000)
    parser.add_argument("--big-runs", type=int, default=1)
    parser.add_argument("--write", type=Path, help="also write the results as Markdown here")
    args = parser.parse_args()
    quick = args.quick
    wanted = args.only.split(",")
    big_modules = 2000 if quick else args.big_modules
    big = f"build_{big_modules}"
    if args.big_build and big not in wanted:
        wanted.append(big)
    if unknown := set(wanted) - {*BENCHMARKS, *SCALEOUT, big}:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="relserver-bench-") as tmp:
        work = Path(tmp)
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            "large": lambda: bench_large(work / "large", (64 if quick else 1024) * MiB, args.runs),
            "small": lambda: bench_small(work / "small", 500 if quick else 5000, args.runs),
            "listing": lambda: bench_listing(work / "listing", 2000 if quick else 50_000, args.runs),
            "build": lambda: bench_build(work / "build", 200 if quick else args.build_modules, args.runs),
            big: lambda: bench_build(work / big, big_modules, args.big_runs, profile=False),
            "download": lambda: bench_download(work / "download", (64 if quick else 1024) * MiB, args.runs),
            "member": lambda: bench_member(work / "member", (32 if quick else 256) * MiB, args.runs),
            "scaleout_small": lambda: _scaleout().bench_scaleout_small(
                sys.modules[__name__], work / "scaleout_small", 100 if quick else 5000, args.runs
            ),
            "scaleout_build": lambda: _scaleout().bench_scaleout_build(
                sys.modules[__name__], work / "scaleout_build", 20 if quick else args.build_modules, args.runs
            ),
            "resolve": lambda: bench_resolve(work / "resolve", 2 if quick else 15, args.runs, 8, 64),
            "ui": lambda: bench_ui(work / "ui", 2000 if quick else 50_000, args.runs),
        }
        for name in wanted:
            print(f"== {name}", file=sys.stderr, flush=True)
            results[name] = steps[name]()
            print(json.dumps(results[name], indent=2), file=sys.stderr, flush=True)
    command = "scripts/bench.py " + " ".join(sys.argv[1:])
    report = render(results, command)
    print(report)
    if args.write:
        old = args.write.read_text() if args.write.exists() else ""
        if old and not set(BENCHMARKS) <= set(wanted):
            # A partial run replaces only its own sections: the others keep their figures.
            report = merge(old, results, command)
        # The hand-written reading of the figures below the tables survives a re-run.
        notes = ""
        if NOTES_HEADING in old:
            notes = "\n" + NOTES_HEADING + old.split(NOTES_HEADING, 1)[1]
        args.write.write_text(report.rstrip() + "\n" + notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
