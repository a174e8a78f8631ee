"""relserver against a same-run baseline (scripts/baseline.py), on this machine.

    .venv/bin/python scripts/bench.py [--quick] [--runs 3] [--only large,small,...] [--write docs/benchmarks.md]

Measurements (targets in brackets, relserver / baseline):
  large     one 1 GiB upload: MB/s of both, relserver's peak RSS over idle   [>= 0.9, <= 32 MiB growth]
  small     5 000 uploads of 1 KiB over 32 keep-alive connections; the load
            generator's own ceiling against a no-op handler is reported too  [>= 0.6]
  listing   a release of 50 000 files: first page, offset 19 900, a query    [p50 < 10 ms; deep <= 2x first]
  build     sentry-cli 3.8.2 `sourcemaps upload` of 2 000 files (~60 MB):
            wall time, relserver CPU seconds, and the top of its profile
  download  1 GiB download against aiohttp's FileResponse                    [>= 0.9]

Each figure is the median of --runs runs. --quick shrinks every size for a smoke test.
Never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
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
        """The server's pid; under py-spy, the profiled child's."""
        for children in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                if kids := children.read_text().split():
                    return int(kids[0])
        return self.proc.pid

    def rss(self) -> int:
        return _status_field(self.pid, "VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.pid != self.proc.pid:
            # Under py-spy: end the server, and py-spy writes its profile and exits.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
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
def relserver(data_dir: Path, *extra: str, profile: Path | None = None) -> Iterator[Proc]:
    args = []
    if profile is not None:
        # A sampling profile of every thread (hashing and unzipping run in worker threads).
        args += [str(PY_SPY), "record", "--rate", "250", "--format", "raw", "--output", str(profile), "--threads", "--"]
    args += [
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
    payload = os.urandom(size)
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, headers=AUTH, connector=connector) as session:

        async def worker() -> None:
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
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
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


# --- 4. a real build with sentry-cli ------------------------------------------------------


def make_build(root: Path, files: int, total_bytes: int) -> None:
    """`files` files, half scripts and half maps, about `total_bytes` in all."""
    root.mkdir(parents=True)
    pairs = files // 2
    per_pair = total_bytes // max(pairs, 1)
    for i in range(pairs):
        noise = secrets.token_hex(per_pair // 3)  # 2/3 of the pair in the map, 1/3 in the script
        (root / f"chunk{i}.js").write_text(
            f'var c{i}="{noise[: per_pair // 3]}";\n//# sourceMappingURL=chunk{i}.js.map\n'
        )
        mapping = {"version": 3, "sources": [f"src/{i}.ts"], "names": [], "mappings": "AAAA", "sourcesContent": [noise]}
        (root / f"chunk{i}.js.map").write_text(json.dumps(mapping))


def bench_build(work: Path, files: int, total_bytes: int) -> dict[str, Any]:
    make_build(work / "dist", files, total_bytes)
    size = sum(p.stat().st_size for p in (work / "dist").iterdir())
    profile = work / "relserver.profile.txt"
    with relserver(work / "rel", profile=profile) as server:
        env = {
            **os.environ,
            "SENTRY_URL": server.url,
            "SENTRY_AUTH_TOKEN": TOKEN,
            "SENTRY_ORG": "acme",
            "HOME": str(work),
        }
        cpu_before = server.cpu_seconds()
        started = time.perf_counter()
        result = subprocess.run(
            [
                str(SENTRY_CLI_3),
                "sourcemaps",
                "upload",
                str(work / "dist"),
                "--release",
                "build",
                "-p",
                "web",
                "--wait",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu_before
        if result.returncode:
            raise RuntimeError(result.stderr)
    return {
        "files": files,
        "mb": size / MiB,
        "wall_s": wall,
        "relserver_cpu_s": cpu,
        "profile_top_self": _top_frames(profile, leaf=True),
        "profile_top_relserver": _top_frames(profile, leaf=False),
    }


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


def render(results: dict[str, Any], command: str) -> str:
    lines = ["# Benchmarks", "", f"Produced by `{command}`; every figure is a median of the runs.", ""]
    lines += ["| machine | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in machine().items()] + [""]
    for name, values in results.items():
        lines += [f"## {name}", "", "| measure | value |", "| --- | --- |"]
        for key, value in values.items():
            if isinstance(value, list):
                value = "<br>".join(str(v) for v in value)
            elif isinstance(value, float):
                value = f"{value:.2f}"
            lines.append(f"| {key} | {value} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        url, kind, count, concurrency, size, prefix = sys.argv[2:8]
        print(json.dumps(asyncio.run(loadgen(url, kind, int(count), int(concurrency), int(size), prefix))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="large,small,listing,build,download")
    parser.add_argument("--write", type=Path, help="also write the results as Markdown here")
    args = parser.parse_args()
    quick = args.quick
    wanted = args.only.split(",")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="relserver-bench-") as tmp:
        work = Path(tmp)
        steps = {
            "large": lambda: bench_large(work / "large", (64 if quick else 1024) * MiB, args.runs),
            "small": lambda: bench_small(work / "small", 500 if quick else 5000, args.runs),
            "listing": lambda: bench_listing(work / "listing", 2000 if quick else 50_000, args.runs),
            "build": lambda: bench_build(work / "build", 200 if quick else 2000, (6 if quick else 60) * MiB),
            "download": lambda: bench_download(work / "download", (64 if quick else 1024) * MiB, args.runs),
        }
        for name in wanted:
            print(f"== {name}", file=sys.stderr, flush=True)
            results[name] = steps[name]()
            print(json.dumps(results[name], indent=2), file=sys.stderr, flush=True)
    report = render(results, "scripts/bench.py " + " ".join(sys.argv[1:]))
    print(report)
    if args.write:
        # The hand-written reading of the figures below the tables survives a re-run.
        notes = ""
        if args.write.exists() and NOTES_HEADING in (old := args.write.read_text()):
            notes = "\n" + NOTES_HEADING + old.split(NOTES_HEADING, 1)[1]
        args.write.write_text(report.rstrip() + "\n" + notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
